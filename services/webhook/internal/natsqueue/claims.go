package natsqueue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/casekeeper/core/pkg/natsbus"
)

// ClaimsBucket is the KV bucket in which an attempt is claimed before it is sent, one key per attempt
// ("<delivery id>.<attempt number>"). Two messages can ask for the same attempt: a resend and the retry that falls
// due while it is in flight, or two resends of one delivery. Each reads the same state and would send; the claim
// is a create on the key, which exactly one of them wins on every replica and NATS node, and the other is
// dropped. The value is the stream sequence of the message that won, so that JetStream delivering that same
// message again (its replica died mid-attempt) still sends: the attempt may not have been made.
const ClaimsBucket = "WEBHOOK_ATTEMPT_CLAIMS"

// claimsTTL outlives the window in which two messages can ask for one attempt: both were published before either
// outcome was recorded, and a message does not wait in a consumer for longer than its redeliveries take.
const claimsTTL = 24 * time.Hour

// ClaimsConfig is the bucket.
func ClaimsConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      ClaimsBucket,
		Description: "Attempts of webhook deliveries claimed before sending (retries, resends, redeliveries): one message sends each.",
		History:     1,
		TTL:         claimsTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	}
}

// AttemptClaims claims attempts in the bucket.
type AttemptClaims struct{ kv jetstream.KeyValue }

// OpenAttemptClaims declares the bucket.
func OpenAttemptClaims(ctx context.Context, js jetstream.JetStream, replicas int) (*AttemptClaims, error) {
	kv, err := natsbus.EnsureKeyValue(ctx, js, ClaimsConfig(replicas))
	if err != nil {
		return nil, err
	}
	return &AttemptClaims{kv: kv}, nil
}

// Claim reports whether the message at stream sequence holder may make the attempt: true when it claimed it now
// or had claimed it before, false when another message holds it.
func (c *AttemptClaims) Claim(ctx context.Context, deliveryID string, attempt int, holder uint64) (bool, error) {
	key := deliveryID + "." + strconv.Itoa(attempt)
	value := []byte(strconv.FormatUint(holder, 10))
	for range 2 {
		_, err := c.kv.Create(ctx, key, value)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return false, fmt.Errorf("claiming attempt %s: %w", key, err)
		}
		e, err := c.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // expired between the two calls: claim it again
		}
		if err != nil {
			return false, fmt.Errorf("reading the claim of attempt %s: %w", key, err)
		}
		return string(e.Value()) == string(value), nil
	}
	return false, fmt.Errorf("claiming attempt %s: the claim kept expiring", key)
}

package feed

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"time"
)

// A cursor is the feed position and the time it was handed out, versioned and check-summed, in URL-safe base64:
// opaque so that clients do not build them (we may change what a position is), and checked so that a truncated or
// mistyped cursor is refused rather than silently read as another position. It is not a secret: a forged cursor only
// moves the reader within its own tenant's feed.
//
// The time is what makes an expired cursor detectable without any state: every event after the position was stored
// at or after it, so while it is younger than the retention, nothing after the position has been expired yet.
type Cursor struct {
	Seq int64
	// Issued is when the position was current: the storage time of the event at Seq, or the time the head was read
	// for a cursor handed out at the head. Zero for cursors made before cursors carried a time.
	Issued time.Time
}

// Cursor versions: 1 held the position only; 2 adds the time.
const (
	cursorV1    = 1
	cursorV2    = 2
	cursorV1Len = 18 // base64 of 1 + 8 + 4 bytes
	cursorV2Len = 28 // base64 of 1 + 8 + 8 + 4 bytes
)

// Latest is the `after` value that starts at the head of the feed.
const Latest = "latest"

var errBadCursor = errors.New("feed: malformed cursor")

// String encodes the cursor.
func (c Cursor) String() string {
	var b [21]byte
	b[0] = cursorV2
	binary.BigEndian.PutUint64(b[1:9], uint64(c.Seq))
	binary.BigEndian.PutUint64(b[9:17], uint64(c.Issued.UnixMilli()))
	binary.BigEndian.PutUint32(b[17:], crc32.ChecksumIEEE(b[:17]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ParseCursor reads a cursor made by Cursor.String (or a version 1 cursor, which has no time).
func ParseCursor(s string) (Cursor, error) {
	if len(s) != cursorV1Len && len(s) != cursorV2Len {
		return Cursor{}, errBadCursor
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return Cursor{}, errBadCursor
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if sum != crc32.ChecksumIEEE(body) {
		return Cursor{}, errBadCursor
	}
	var c Cursor
	switch {
	case len(b) == 13 && b[0] == cursorV1:
		c.Seq = int64(binary.BigEndian.Uint64(b[1:9]))
	case len(b) == 21 && b[0] == cursorV2:
		c.Seq = int64(binary.BigEndian.Uint64(b[1:9]))
		c.Issued = time.UnixMilli(int64(binary.BigEndian.Uint64(b[9:17]))).UTC()
	default:
		return Cursor{}, errBadCursor
	}
	if c.Seq < 0 {
		return Cursor{}, errBadCursor
	}
	return c, nil
}

// ClockSkew is the disagreement allowed between the clocks of the gateway replicas and of the projector that stamps
// stored events: a cursor counts as expired that much before the retention would say.
const ClockSkew = 5 * time.Minute

// MayHaveExpired reports whether events after the cursor may already have been deleted by the feed's retention:
// it was handed out longer ago than the retention (less the clock skew). A cursor without a time never has.
func (c Cursor) MayHaveExpired(now time.Time, retention time.Duration) bool {
	return !c.Issued.IsZero() && c.Issued.Before(now.Add(-retention+ClockSkew))
}

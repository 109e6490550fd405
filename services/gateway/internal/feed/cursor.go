package feed

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// A cursor is the feed position, versioned and check-summed, in URL-safe base64: opaque so that clients do not build
// them (we may change what a position is), and checked so that a truncated or mistyped cursor is refused rather
// than silently read as another position. It is not a secret: a forged cursor only moves the reader within its own
// tenant's feed.
const cursorVersion = 1

var errBadCursor = errors.New("feed: malformed cursor")

// EncodeCursor turns a position into a cursor.
func EncodeCursor(seq int64) string {
	var b [13]byte
	b[0] = cursorVersion
	binary.BigEndian.PutUint64(b[1:9], uint64(seq))
	binary.BigEndian.PutUint32(b[9:], crc32.ChecksumIEEE(b[:9]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// DecodeCursor reads a cursor made by EncodeCursor.
func DecodeCursor(s string) (int64, error) {
	if len(s) != 18 {
		return 0, errBadCursor
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != 13 || b[0] != cursorVersion {
		return 0, errBadCursor
	}
	if binary.BigEndian.Uint32(b[9:]) != crc32.ChecksumIEEE(b[:9]) {
		return 0, errBadCursor
	}
	seq := int64(binary.BigEndian.Uint64(b[1:9]))
	if seq < 0 {
		return 0, errBadCursor
	}
	return seq, nil
}

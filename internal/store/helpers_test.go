package store_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

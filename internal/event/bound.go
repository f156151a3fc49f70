package event

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"strings"
)

// idEncoding writes a digest with the 32 characters of base32hex in lower
// case, every one of them allowed in a DNS label.
var idEncoding = base32.HexEncoding.WithPadding(base32.NoPadding)

// boundIDHash is how many bytes of the digest a bound job's ID keeps: 20
// bytes (160 bits) make 32 characters, so that a collision between events
// is as unlikely as one of SHA-1, and the ID leaves room in a Job name.
const boundIDHash = 20

// JobID derives the job ID of an event that binding selected from the
// event's source and id, which together identify a CloudEvent: a duplicate
// or redelivered event derives the same ID, and so is one job, as Knative's
// JobSink makes one Job of it. The binding is part of it, so that two
// bindings that select one event each run their own job. Each part is
// length-prefixed before it is hashed, so that no two triples hash the same
// input. The ID is "ev" and 32 lower-case base32hex characters: a DNS label
// well within job.ValidateID's limit, whatever the source and id hold.
func JobID(binding, source, id string) string {
	h := sha256.New()
	for _, part := range []string{binding, source, id} {
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(part)))])
		h.Write([]byte(part))
	}
	sum := h.Sum(nil)
	return "ev" + strings.ToLower(idEncoding.EncodeToString(sum[:boundIDHash]))
}

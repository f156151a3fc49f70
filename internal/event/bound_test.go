package event_test

import (
	"testing"

	"github.com/kjobs/kjobs/internal/event"
	"github.com/kjobs/kjobs/internal/job"
)

func TestJobID(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b [3]string
		same bool
	}{
		{"one event delivered twice", [3]string{"uploads", "arn:aws:s3:::photos", "3f1c/2026-12-01T10:00:00Z#17"}, [3]string{"uploads", "arn:aws:s3:::photos", "3f1c/2026-12-01T10:00:00Z#17"}, true},
		{"another id", [3]string{"uploads", "arn:aws:s3:::photos", "1"}, [3]string{"uploads", "arn:aws:s3:::photos", "2"}, false},
		{"another source", [3]string{"uploads", "/a", "1"}, [3]string{"uploads", "/b", "1"}, false},
		{"another binding", [3]string{"uploads", "/a", "1"}, [3]string{"thumbnails", "/a", "1"}, false},
		{"parts shifted across the boundary", [3]string{"b", "ab", "c"}, [3]string{"b", "a", "bc"}, false},
		{"a separator inside a part", [3]string{"b", "a\x00", "c"}, [3]string{"b", "a", "\x00c"}, false},
		{"case matters, as in CloudEvents ids", [3]string{"b", "/s", "ID"}, [3]string{"b", "/s", "id"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, y := event.JobID(tc.a[0], tc.a[1], tc.a[2]), event.JobID(tc.b[0], tc.b[1], tc.b[2])
			if (x == y) != tc.same {
				t.Errorf("JobID(%q) = %s, JobID(%q) = %s; want same = %v", tc.a, x, tc.b, y, tc.same)
			}
			for _, id := range []string{x, y} {
				if err := job.ValidateID(id); err != nil {
					t.Errorf("JobID gave %q: %v", id, err)
				}
			}
		})
	}
}

// FuzzJobID checks that any source and id derive a valid job ID, the same
// one every time, and that two different events seen in one run never
// derive the same ID.
func FuzzJobID(f *testing.F) {
	f.Add("uploads", "arn:aws:s3:::photos", "3f1c/2026-12-01T10:00:00Z#17")
	f.Add("github", "https://github.com/kjobs/kjobs", "a1b2c3d4-0000-0000-0000-000000000000")
	f.Add("", "", "")
	f.Add("k8s", "https://10.0.0.1:443", "\x00\xff∑")
	seen := map[string][3]string{}
	f.Fuzz(func(t *testing.T, binding, source, id string) {
		got := event.JobID(binding, source, id)
		if err := job.ValidateID(got); err != nil {
			t.Fatalf("JobID(%q, %q, %q) = %q: %v", binding, source, id, got, err)
		}
		if again := event.JobID(binding, source, id); again != got {
			t.Fatalf("JobID(%q, %q, %q) gave %q, then %q", binding, source, id, got, again)
		}
		in := [3]string{binding, source, id}
		if other, ok := seen[got]; ok && other != in {
			t.Fatalf("JobID(%q) = JobID(%q) = %q", in, other, got)
		}
		seen[got] = in
	})
}

package job

import "testing"

func TestCanMove(t *testing.T) {
	allowed := map[[2]Status]bool{
		{Queued, Waiting}:    true,
		{Queued, Running}:    true,
		{Queued, Failed}:     true,
		{Queued, Canceled}:   true,
		{Waiting, Running}:   true,
		{Waiting, Failed}:    true,
		{Waiting, Canceled}:  true,
		{Running, Retrying}:  true,
		{Running, Succeeded}: true,
		{Running, Failed}:    true,
		{Running, Canceled}:  true,
		{Retrying, Waiting}:  true,
		{Retrying, Running}:  true,
		{Retrying, Failed}:   true,
		{Retrying, Canceled}: true,
	}
	for _, from := range Statuses {
		for _, to := range Statuses {
			t.Run(string(from)+"->"+string(to), func(t *testing.T) {
				if got, want := from.CanMove(to), allowed[[2]Status{from, to}]; got != want {
					t.Errorf("CanMove = %v, want %v", got, want)
				}
			})
		}
	}
}

func TestTerminal(t *testing.T) {
	for _, s := range Statuses {
		if got, want := s.Terminal(), len(transitions[s]) == 0; got != want {
			t.Errorf("%s.Terminal() = %v, want %v", s, got, want)
		}
	}
}

func TestParseStatus(t *testing.T) {
	for _, s := range Statuses {
		if got, err := ParseStatus(string(s)); err != nil || got != s {
			t.Errorf("ParseStatus(%q) = %q, %v", s, got, err)
		}
	}
	if _, err := ParseStatus("done"); err == nil {
		t.Error("ParseStatus(done) succeeded")
	}
}

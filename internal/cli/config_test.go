package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	named := write("named.yaml", "url: http://named:1\ntoken: named-token\n")
	write("xdg/kjobs/config.yaml", "url: http://xdg:1\ntoken: xdg-token\n")
	write("home/.config/kjobs/config.yaml", "url: http://home:1/\n")
	bad := write("bad.yaml", "url: http://x\ntoken: the-secret\nextra: 1\n")

	tests := []struct {
		name      string
		flags     globals
		env       map[string]string
		url       string
		token     string
		wantUsage string
	}{
		{"defaults", globals{}, nil, defaultURL, "", ""},
		{"flags", globals{url: "https://f:1/", token: "f-token"}, map[string]string{"KJOBS_URL": "http://e:1", "KJOBS_TOKEN": "e"}, "https://f:1", "f-token", ""},
		{"environment", globals{}, map[string]string{"KJOBS_URL": "http://e:1", "KJOBS_TOKEN": " e-token\n", "KJOBS_CONFIG": named}, "http://e:1", "e-token", ""},
		{"named config file", globals{}, map[string]string{"KJOBS_CONFIG": named}, "http://named:1", "named-token", ""},
		{"per value: the flag's URL, the file's token", globals{url: "http://f:1"}, map[string]string{"KJOBS_CONFIG": named}, "http://f:1", "named-token", ""},
		{"XDG_CONFIG_HOME", globals{}, map[string]string{"XDG_CONFIG_HOME": filepath.Join(dir, "xdg"), "HOME": filepath.Join(dir, "home")}, "http://xdg:1", "xdg-token", ""},
		{"~/.config", globals{}, map[string]string{"HOME": filepath.Join(dir, "home")}, "http://home:1", "", ""},
		{"no config file is fine", globals{}, map[string]string{"HOME": filepath.Join(dir, "nohome")}, defaultURL, "", ""},
		{"a named config file must exist", globals{}, map[string]string{"KJOBS_CONFIG": filepath.Join(dir, "none.yaml")}, "", "", "config file: "},
		{"unknown keys, and the error hides the values", globals{}, map[string]string{"KJOBS_CONFIG": bad}, "", "", "not YAML with the keys url and token"},
		{"not http", globals{url: "localhost:8080"}, nil, "", "", "not an http:// or https:// URL"},
		{"credentials in the URL", globals{url: "http://me:pw@h:1"}, nil, "", "", "must not hold credentials"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string { return tc.env[k] }
			url, token, err := resolve(tc.flags, getenv)
			if tc.wantUsage != "" {
				var ee *exitError
				if !errors.As(err, &ee) || ee.code != ExitUsage || !strings.Contains(err.Error(), tc.wantUsage) {
					t.Fatalf("error %v, want a usage error with %q", err, tc.wantUsage)
				}
				if strings.Contains(err.Error(), "the-secret") || strings.Contains(err.Error(), "pw") {
					t.Errorf("error %q shows a secret", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if url != tc.url || token != tc.token {
				t.Errorf("got %q and token %q, want %q and %q", url, token, tc.url, tc.token)
			}
		})
	}
}

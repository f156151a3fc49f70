package cli

import (
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// defaultURL is the API of `make run`.
const defaultURL = "http://localhost:8080"

// fileConfig is the config file: YAML with the keys url and token.
type fileConfig struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

// configPath returns the config file's path and whether the user named it
// ($KJOBS_CONFIG), in which case it must exist.
func configPath(getenv func(string) string) (string, bool) {
	if p := getenv("KJOBS_CONFIG"); p != "" {
		return p, true
	}
	dir := getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := getenv("HOME")
		if home == "" {
			return "", false
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "kjobs", "config.yaml"), false
}

// resolve returns the API's URL and token: each from its flag, else its
// environment variable, else the config file; the URL defaults to
// defaultURL. The config file is read only when a flag and the
// environment leave something unset. Errors never hold the token.
func resolve(g globals, getenv func(string) string) (base, token string, err error) {
	base, token = g.url, g.token
	if base == "" {
		base = getenv("KJOBS_URL")
	}
	if token == "" {
		token = getenv("KJOBS_TOKEN")
	}
	if base == "" || token == "" {
		fc, err := readConfig(getenv)
		if err != nil {
			return "", "", err
		}
		if base == "" {
			base = fc.URL
		}
		if token == "" {
			token = fc.Token
		}
	}
	if base == "" {
		base = defaultURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", "", usageError("the API's URL %q is not an http:// or https:// URL", base)
	}
	if u.User != nil {
		// A password in the URL would be printed with every error.
		return "", "", usageError("the API's URL must not hold credentials: give the token with --token, KJOBS_TOKEN or the config file")
	}
	return strings.TrimRight(base, "/"), strings.TrimSpace(token), nil
}

func readConfig(getenv func(string) string) (fileConfig, error) {
	var fc fileConfig
	path, named := configPath(getenv)
	if path == "" {
		return fc, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !named {
		return fc, nil
	}
	if err != nil {
		return fc, usageError("config file: %v", err)
	}
	if err := yaml.UnmarshalStrict(data, &fc); err != nil {
		// The YAML parser's errors quote lines, which may be the token's.
		return fc, usageError("config file %s: not YAML with the keys url and token", path)
	}
	return fc, nil
}

// checkOutput refuses an --output the command cannot print.
func checkOutput(o string) error {
	switch o {
	case "table", "json", "yaml":
		return nil
	}
	return usageError("--output %q: want json, yaml or table", o)
}

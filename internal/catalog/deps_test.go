package catalog

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestServicesLinkNoFunctionCode checks that the API and the dispatcher know
// functions only through their declarations: neither links the built-in
// functions, so that adding one, or declaring one of one's own, rebuilds
// neither.
func TestServicesLinkNoFunctionCode(t *testing.T) {
	t.Parallel()
	const registry = "github.com/kjobs/kjobs/processor/builtin"
	for _, pkg := range []string{"github.com/kjobs/kjobs/services/api", "github.com/kjobs/kjobs/functions/dispatcher"} {
		t.Run(pkg, func(t *testing.T) {
			t.Parallel()
			out, err := exec.Command("go", "list", "-deps", pkg).Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", pkg, err)
			}
			deps := strings.Fields(string(out))
			if !slices.Contains(deps, "github.com/kjobs/kjobs/internal/catalog") {
				t.Fatalf("%s does not depend on the catalog; is the list right?\n%s", pkg, out)
			}
			for _, dep := range deps {
				if dep == registry || strings.HasPrefix(dep, registry+"/") {
					t.Errorf("%s depends on %s, the built-in functions' code", pkg, dep)
				}
			}
		})
	}
}

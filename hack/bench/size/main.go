// Command size says what a Go binary's bytes are made of: the size of its
// symbols in the sections stored in the file (code, read-only data, data),
// summed by module or by package, and for each module the shortest import
// chain from the main package that links it.
//
// The binary must keep its symbol table: build it as ko does but without
// -ldflags '-s -w', which drop only the symbol table and DWARF, not code or
// data, so the sums are those of the stripped binary that goes in the image.
//
//	export CGO_ENABLED=0 GOFLAGS='-trimpath -tags=grpcnotrace'   # as ko.yaml builds
//	go build -o /tmp/api ./services/api
//	go run ./hack/bench/size -pkg ./services/api /tmp/api
//
// -pkg runs go list with the same environment, so that the import chains
// are those of the build.
//
// What no symbol names (the pclntab, most type descriptors and strings,
// which the linker stores without a symbol of their own) is reported per
// section as "not attributed".
package main

import (
	"cmp"
	"debug/buildinfo"
	"debug/elf"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os/exec"
	"slices"
	"strings"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("size: ")
	by := flag.String("by", "module", "sum by module or by package")
	pkg := flag.String("pkg", "", "the binary's main package, to show why each module is linked (go list -deps)")
	top := flag.Int("n", 25, "rows to print")
	within := flag.String("within", "", "with -by package: only the packages under this prefix")
	flag.Parse()
	if flag.NArg() != 1 || (*by != "module" && *by != "package") {
		log.Fatal("usage: size [-by module|package] [-pkg main package] [-n rows] [-within prefix] binary")
	}
	bin := flag.Arg(0)

	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		log.Fatal(err)
	}
	modules := []string{info.Main.Path}
	for _, d := range info.Deps {
		modules = append(modules, d.Path)
	}
	// The longest module path that prefixes a package is its module
	// (knative.dev/pkg and knative.dev/pkg/... of another module, say).
	slices.SortFunc(modules, func(a, b string) int { return cmp.Compare(len(b), len(a)) })

	f, err := elf.Open(bin)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		log.Fatalf("%s: %v (build it without -ldflags '-s -w')", bin, err)
	}

	// Only sections stored in the file count: .bss and .noptrbss take
	// memory, not bytes in the image.
	stored := map[elf.SectionIndex]*elf.Section{}
	var total uint64
	for i, s := range f.Sections {
		if s.Type == elf.SHT_PROGBITS && s.Flags&elf.SHF_ALLOC != 0 {
			stored[elf.SectionIndex(i)] = s
			total += s.Size
		}
	}
	sums := map[string]uint64{}
	attributed := map[string]uint64{}
	for _, sym := range syms {
		sec, ok := stored[sym.Section]
		if !ok || sym.Size == 0 {
			continue
		}
		attributed[sec.Name] += sym.Size
		p := packageOf(sym.Name)
		key := p
		if *by == "module" {
			key = moduleOf(p, modules)
		} else if !strings.HasPrefix(p, *within) {
			continue
		}
		sums[key] += sym.Size
	}

	fmt.Printf("%s: %d bytes in stored sections\n", bin, total)
	for _, s := range f.Sections {
		if s.Type == elf.SHT_PROGBITS && s.Flags&elf.SHF_ALLOC != 0 && s.Size > 64<<10 {
			fmt.Printf("  %-12s %11d, of which not attributed to a symbol %11d\n", s.Name, s.Size, s.Size-min(s.Size, attributed[s.Name]))
		}
	}

	var why map[string][]string
	if *pkg != "" && *by == "module" {
		if why, err = chains(*pkg, modules); err != nil {
			log.Fatal(err)
		}
	}
	keys := make([]string, 0, len(sums))
	for k := range sums {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return cmp.Compare(sums[b], sums[a]) })
	fmt.Printf("\n| %s | bytes | share of stored |", *by)
	if why != nil {
		fmt.Print(" linked through |")
	}
	fmt.Print("\n|---|---|---|")
	if why != nil {
		fmt.Print("---|")
	}
	fmt.Println()
	for _, k := range keys[:min(*top, len(keys))] {
		fmt.Printf("| %s | %d | %.1f%% |", k, sums[k], 100*float64(sums[k])/float64(total))
		if why != nil {
			fmt.Printf(" %s |", strings.Join(why[k], " → "))
		}
		fmt.Println()
	}
}

// packageOf returns the import path of the package that a symbol belongs
// to, or "" for the linker's own tables.
func packageOf(name string) string {
	for _, p := range []string{"type:.eq.", "type:.hash.", "type:"} {
		if strings.HasPrefix(name, p) {
			name = name[len(p):]
			break
		}
	}
	if rest, ok := strings.CutPrefix(name, "go:itab."); ok {
		// go:itab.*pkg.T,iface: the concrete type's package.
		name, _, _ = strings.Cut(rest, ",")
	} else if strings.HasPrefix(name, "go:") || strings.HasPrefix(name, "go.shape") {
		// The linker's own tables, and generic code shared by every
		// instantiation of one shape.
		return ""
	}
	name = strings.TrimLeft(name, "*[]0123456789")
	// A generic instantiation names its type arguments in brackets; the
	// package is the one before them.
	if i := strings.IndexByte(name, '['); i >= 0 {
		name = name[:i]
	}
	slash := max(strings.LastIndexByte(name, '/'), 0)
	if dot := strings.IndexByte(name[slash:], '.'); dot >= 0 {
		name = name[:slash+dot]
	}
	// The linker escapes a dot in the last element (gopkg.in/yaml%2ev3).
	if p, err := url.PathUnescape(name); err == nil {
		return p
	}
	return name
}

// moduleOf returns the module of package p among modules, longest first;
// "std" for the standard library (and its vendored golang.org/x copies).
func moduleOf(p string, modules []string) string {
	if p == "" {
		return "(linker tables)"
	}
	if first, _, _ := strings.Cut(p, "/"); !strings.Contains(first, ".") {
		return "std"
	}
	for _, m := range modules {
		if p == m || strings.HasPrefix(p, m+"/") {
			return m
		}
	}
	return "(unknown) " + p
}

// chains returns, for each module, the shortest import chain from main to
// the first package of that module it reaches, from go list -deps with the
// environment the binary was built in.
func chains(main string, modules []string) (map[string][]string, error) {
	out, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, main).Output()
	if err != nil {
		return nil, fmt.Errorf("go list -deps %s: %w", main, err)
	}
	imports := map[string][]string{}
	var root string
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		imports[fields[0]] = fields[1:]
		root = fields[0] // -deps lists the main package last
	}
	// Breadth first from the main package: the first time a module is
	// reached, its chain is a shortest one.
	parent := map[string]string{root: ""}
	why := map[string][]string{}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if m := moduleOf(p, modules); why[m] == nil {
			var chain []string
			for q := p; q != ""; q = parent[q] {
				chain = append(chain, q)
			}
			slices.Reverse(chain)
			why[m] = chain
		}
		for _, q := range imports[p] {
			if _, seen := parent[q]; !seen {
				parent[q] = p
				queue = append(queue, q)
			}
		}
	}
	return why, nil
}

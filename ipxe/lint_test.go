package ipxe

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// lint checks a script against iPXE's grammar as src/core/exec.c and
// script.c parse it, and against the commands and options of the iPXE
// builds Foundry serves (Debian's 2019 package). It returns one message per
// problem.
//
// Checked: the "#!ipxe" first line; no control bytes; labels unique and
// every goto target defined (for "goto ${selected}", every menu item's
// label); every command known, with known options and a sane number of
// arguments; ${…} only for settings the script can rely on; a named initrd
// is named on the kernel line and fetched after it.
func lint(script string) []string {
	var errs []string
	fail := func(line int, f string, a ...any) {
		errs = append(errs, fmt.Sprintf("line %d: %s", line, fmt.Sprintf(f, a...)))
	}
	if !strings.HasPrefix(script, "#!ipxe\n") {
		fail(1, "script does not start with #!ipxe")
	}
	if !strings.HasSuffix(script, "\n") {
		fail(0, "script does not end with a newline")
	}
	labels := map[string]bool{}
	var gotos []struct {
		line   int
		target string
	}
	var items []string
	settings := map[string]bool{"platform": true, "selected": true}
	kernelLine, initrdNames := "", map[string]int{}
	kernelAt := 0
	for i, line := range strings.Split(strings.TrimSuffix(script, "\n"), "\n") {
		n := i + 1
		for _, c := range []byte(line) {
			if c < 0x20 && c != '\t' || c == 0x7f {
				fail(n, "control byte %#02x", c)
			}
		}
		if strings.HasPrefix(line, ":") {
			name := strings.TrimSpace(line[1:])
			if name == "" || labels[name] {
				fail(n, "empty or duplicate label %q", name)
			}
			labels[name] = true
			continue
		}
		for _, cmd := range splitCommands(strings.Fields(line)) {
			if len(cmd) == 0 {
				continue
			}
			for _, tok := range cmd {
				for _, m := range expansion.FindAllStringSubmatch(tok, -1) {
					if !settings[m[1]] {
						fail(n, "expands unknown setting %q", m[1])
					}
				}
				if strings.Count(tok, "${") != len(expansion.FindAllString(tok, -1)) {
					fail(n, "unterminated ${ in %q", tok)
				}
			}
			name, pos, err := parseCommand(cmd)
			if err != nil {
				fail(n, "%s", err)
				continue
			}
			switch name {
			case "goto":
				gotos = append(gotos, struct {
					line   int
					target string
				}{n, pos[0]})
			case "item":
				if len(pos) > 0 {
					items = append(items, pos[0])
				}
			case "set":
				settings[pos[0]] = true
			case "kernel":
				kernelLine, kernelAt = strings.Join(cmd, " "), n
			case "initrd":
				if nm := optionValue(cmd, "--name"); nm != "" {
					initrdNames[nm] = n
				}
			}
		}
	}
	for _, g := range gotos {
		if g.target == "${selected}" {
			for _, it := range items {
				if !labels[it] {
					fail(g.line, "menu item %q has no label", it)
				}
			}
		} else if !labels[g.target] {
			fail(g.line, "goto to undefined label %q", g.target)
		}
	}
	for nm, at := range initrdNames {
		if !strings.Contains(kernelLine+" ", " initrd="+nm+" ") {
			fail(at, "initrd %q is not named on the kernel line (UEFI would ignore it)", nm)
		}
		if at < kernelAt {
			fail(at, "initrd fetched before the kernel")
		}
	}
	return errs
}

var expansion = regexp.MustCompile(`\$\{([^}]*)\}`)

// splitCommands splits a line's tokens at the terminators exec.c knows and
// drops a trailing comment.
func splitCommands(tokens []string) [][]string {
	var cmds [][]string
	var cur []string
	for _, t := range tokens {
		switch {
		case strings.HasPrefix(t, "#"):
			return append(cmds, cur)
		case t == "||" || t == "&&" || t == ";":
			cmds = append(cmds, cur)
			cur = nil
		default:
			cur = append(cur, t)
		}
	}
	return append(cmds, cur)
}

// spec is a command's options (true: takes a value) and its positional
// argument count.
type spec struct {
	opts     map[string]bool
	min, max int // max -1: unbounded
}

var imageOpts = map[string]bool{"--name": true, "--timeout": true, "--autofree": false, "--replace": false}

var commands = map[string]spec{
	"echo":    {map[string]bool{"-n": false}, 0, -1},
	"exit":    {nil, 0, 1},
	"kernel":  {imageOpts, 1, -1},
	"initrd":  {imageOpts, 1, -1},
	"chain":   {imageOpts, 1, -1},
	"boot":    {map[string]bool{"--autofree": false, "--replace": false}, 0, -1},
	"sanboot": {map[string]bool{"--drive": true, "--no-describe": false, "--keep": false, "--filename": true}, 0, -1},
	"iseq":    {nil, 2, 2},
	"menu":    {map[string]bool{"--name": true, "--delete": false}, 0, -1},
	"item":    {map[string]bool{"--menu": true, "--key": true, "--default": false, "--gap": false}, 0, -1},
	"choose":  {map[string]bool{"--menu": true, "--default": true, "--timeout": true, "--keep": false}, 1, 1},
	"goto":    {nil, 1, 1},
	"shell":   {nil, 0, 0},
	"set":     {nil, 1, -1},
	"sleep":   {nil, 1, 1},
}

func parseCommand(cmd []string) (name string, pos []string, err error) {
	name = cmd[0]
	sp, ok := commands[name]
	if !ok {
		return name, nil, fmt.Errorf("unknown command %q", name)
	}
	args := cmd[1:]
	// iPXE's getopt stops at the first non-option (echo and item text may
	// then contain anything).
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		takesValue, ok := sp.opts[args[0]]
		if !ok {
			return name, nil, fmt.Errorf("%s: unknown option %q", name, args[0])
		}
		if takesValue {
			if len(args) < 2 {
				return name, nil, fmt.Errorf("%s: option %s needs a value", name, args[0])
			}
			args = args[1:]
		}
		args = args[1:]
	}
	if len(args) < sp.min || sp.max >= 0 && len(args) > sp.max {
		return name, nil, fmt.Errorf("%s: %d arguments", name, len(args))
	}
	return name, args, nil
}

func optionValue(cmd []string, opt string) string {
	for i := 1; i+1 < len(cmd); i++ {
		if cmd[i] == opt {
			return cmd[i+1]
		}
	}
	return ""
}

// TestLintCatches makes sure the linter used on the golden files can fail.
func TestLintCatches(t *testing.T) {
	const ok = "#!ipxe\nkernel http://x/k initrd=initrd\ninitrd --name initrd http://x/i\nboot\n"
	if errs := lint(ok); len(errs) > 0 {
		t.Fatalf("good script refused: %v", errs)
	}
	bad := map[string]string{
		"no shebang":           "echo hi\n",
		"no final newline":     "#!ipxe\necho hi",
		"unknown command":      "#!ipxe\nimgtrust\n",
		"unknown option":       "#!ipxe\nsanboot --drvie 0x80\n",
		"missing option value": "#!ipxe\nchoose --timeout\n",
		"argument count":       "#!ipxe\niseq a\n",
		"undefined label":      "#!ipxe\ngoto nowhere\n",
		"duplicate label":      "#!ipxe\n:a\n:a\n",
		"item without label":   "#!ipxe\nitem x X\nchoose s\ngoto ${selected}\n",
		"unknown setting":      "#!ipxe\necho ${net0/ip}\n",
		"unterminated setting": "#!ipxe\necho ${platform\n",
		"control byte":         "#!ipxe\necho a\rb\n",
		"initrd not named":     "#!ipxe\nkernel http://x/k\ninitrd --name initrd http://x/i\nboot\n",
		"initrd before kernel": "#!ipxe\ninitrd --name initrd http://x/i\nkernel http://x/k initrd=initrd\nboot\n",
		"injected command":     "#!ipxe\nkernel http://x/k quiet && shellx\n",
	}
	for name, script := range bad {
		if errs := lint(script); len(errs) == 0 {
			t.Errorf("%s: lint accepted %q", name, script)
		}
	}
}

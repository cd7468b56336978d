package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/foundry-appliance/foundry/appliance/datadisk"
	"github.com/foundry-appliance/foundry/appliance/netplan"
	"github.com/foundry-appliance/foundry/names"
)

// The setup dialog's prompts. Each is printed as "<prompt> [<default>]: ";
// the ISO end-to-end test waits for them on the serial console and answers.
const (
	PromptInterface = "Provisioning interface"
	PromptAddress   = "Appliance address on it"
	PromptRange     = "DHCP range"
	PromptRouter    = "Router to offer (Enter for none)"
	// PromptFormat starts the question asked for each blank disk: "Format
	// /dev/vdb (8.0 GiB, QEMU HARDDISK) as the data disk FOUNDRY-DATA? ...".
	PromptFormat = "Format "
	PromptApply  = "Apply?"
)

// DefaultAddress is the appliance's address offered on the provisioning
// interface.
const DefaultAddress = "10.77.0.1/24"

// Disk is a blank disk the setup may format as the data disk.
type Disk struct {
	Path  string // "/dev/vdb"
	Size  int64  // bytes
	Model string // "QEMU HARDDISK", "" when unknown
}

func (d Disk) String() string {
	desc := sizeText(d.Size)
	if d.Model != "" {
		desc += ", " + d.Model
	}
	return clean(d.Path + " (" + desc + ")")
}

// Answers are the operator's answers to the setup dialog.
type Answers struct {
	// Link is the provisioning interface.
	Link Link
	// Address is the appliance's address on it, with the subnet's prefix
	// length (10.77.0.1/24).
	Address netip.Prefix
	// RangeStart and RangeEnd bound, inclusively, the DHCP range; both lie
	// in Address's subnet and the range leaves out Address.
	RangeStart, RangeEnd netip.Addr
	// Router is the router offered to clients; zero = none.
	Router netip.Addr
	// Format is the path of the blank disk to format as FOUNDRY-DATA; "" =
	// none.
	Format string
}

// Setup asks the operator, on out and in, for the provisioning interface
// (one of links), the appliance's address and DHCP range on it, a router to
// offer and, when blanks is not empty, which blank disk to format as the
// data disk; it shows a summary and returns the answers once the operator
// applies them. An invalid answer is explained and asked again; check (nil =
// none) judges the network answers as a whole, and its error sends the
// operator back to the address question. Declining the summary starts again
// from the interface, with the previous answers as defaults.
//
// Setup returns ctx.Err() when ctx ends, and an error when in ends or links
// is empty. Errors writing to out are ignored: a console that cannot be
// written to still gets its answers read.
func Setup(ctx context.Context, in *Input, out io.Writer, links []Link, blanks []Disk, check func(Answers) error) (Answers, error) {
	if len(links) == 0 {
		return Answers{}, errors.New("setup: no network interface to provision on")
	}
	d := &dialog{ctx: ctx, in: in, out: out}
	d.say("")
	d.say("Foundry setup. Enter accepts the answer in [brackets].")
	var a Answers
	for {
		d.say("")
		d.say("Network interfaces:")
		for i, l := range links {
			d.say("  %d  %s", i+1, strings.Join(linkParts(l), "  "))
		}
		err := d.ask(PromptInterface, strconv.Itoa(defaultLink(links, a.Link)+1), func(s string) (err error) {
			a.Link, err = pickLink(links, s)
			return err
		})
		if err != nil {
			return Answers{}, err
		}
		for {
			if err := d.network(&a); err != nil {
				return Answers{}, err
			}
			if check == nil {
				break
			}
			err := check(a)
			if err == nil {
				break
			}
			d.say("  %s", clean(err.Error()))
		}
		// No by default, even on a second round: erasing a disk takes a
		// typed yes every time.
		a.Format = ""
		for _, disk := range blanks {
			yes, err := d.yesNo(PromptFormat+disk.String()+" as the data disk "+datadisk.Label+"? Everything on it is erased.", false)
			if err != nil {
				return Answers{}, err
			}
			if yes {
				a.Format = disk.Path
				break
			}
		}
		d.summary(a, len(blanks) > 0)
		apply, err := d.yesNo(PromptApply, true)
		if err != nil {
			return Answers{}, err
		}
		if apply {
			return a, nil
		}
	}
}

// dialog is one run of the setup: where the questions go and the answers
// come from.
type dialog struct {
	ctx context.Context
	in  *Input
	out io.Writer
}

func (d *dialog) say(format string, args ...any) {
	fmt.Fprintf(d.out, format+"\n", args...)
}

// ask prints "prompt [def]: " and hands the answer (def for an empty line)
// to take until take accepts it.
func (d *dialog) ask(prompt, def string, take func(string) error) error {
	return d.askShown(prompt, def, def, take)
}

// askShown is ask with a bracket text other than the default ("y/N").
func (d *dialog) askShown(prompt, shown, def string, take func(string) error) error {
	for {
		fmt.Fprintf(d.out, "%s [%s]: ", prompt, shown)
		line, err := d.in.Line(d.ctx)
		if err != nil {
			if d.ctx.Err() != nil {
				return d.ctx.Err()
			}
			return fmt.Errorf("setup: read the answer to %q: %w", prompt, err)
		}
		answer := strings.TrimSpace(line)
		if answer == "" {
			answer = def
		}
		err = take(answer)
		if err == nil {
			return nil
		}
		d.say("  %s", clean(err.Error()))
	}
}

func (d *dialog) yesNo(prompt string, def bool) (bool, error) {
	shown, defText := "y/N", "n"
	if def {
		shown, defText = "Y/n", "y"
	}
	var yes bool
	err := d.askShown(prompt, shown, defText, func(s string) error {
		switch strings.ToLower(s) {
		case "y", "yes":
			yes = true
		case "n", "no":
			yes = false
		default:
			return fmt.Errorf("answer y or n, not %s", names.Label(s))
		}
		return nil
	})
	return yes, err
}

// network asks questions 2 to 4 into a, offering a's current answers (from
// a previous round) as defaults where they still make sense.
func (d *dialog) network(a *Answers) error {
	def := DefaultAddress
	if a.Address.IsValid() {
		def = a.Address.String()
	}
	err := d.ask(PromptAddress, def, func(s string) (err error) {
		a.Address, err = netplan.ParseAddress(s)
		return err
	})
	if err != nil {
		return err
	}
	start, end := a.RangeStart, a.RangeEnd
	if netplan.CheckRange(a.Address, start, end) != nil {
		start, end = netplan.DefaultRange(a.Address)
	}
	err = d.ask(PromptRange, netplan.RangeText(start, end), func(s string) (err error) {
		a.RangeStart, a.RangeEnd, err = netplan.ParseRange(a.Address, s)
		return err
	})
	if err != nil {
		return err
	}
	// No default router: "Enter for none" must mean none, even on a second
	// round.
	return d.ask(PromptRouter, "", func(s string) (err error) {
		a.Router, err = netplan.ParseRouter(netplan.Provisioning{Address: a.Address, RangeStart: a.RangeStart, RangeEnd: a.RangeEnd}, s)
		return err
	})
}

func (d *dialog) summary(a Answers, disks bool) {
	d.say("")
	d.say("Summary:")
	d.say("  Provisioning interface  %s (%s)", clean(a.Link.Name), clean(or(a.Link.MAC, "no MAC")))
	d.say("  Appliance address       %s", a.Address)
	d.say("  DHCP range              %s", netplan.RangeText(a.RangeStart, a.RangeEnd))
	router := "none"
	if a.Router.IsValid() {
		router = a.Router.String()
	}
	d.say("  Router                  %s", router)
	if disks {
		disk := "none formatted: running from RAM, nothing is kept"
		if a.Format != "" {
			disk = clean(a.Format) + ", to be formatted as " + datadisk.Label
		}
		d.say("  Data disk               %s", disk)
	}
}

// defaultLink is the index of the interface offered first: the previous
// answer, else the first with a link, else the first.
func defaultLink(links []Link, prev Link) int {
	if prev.Name != "" {
		for i, l := range links {
			if l.Name == prev.Name {
				return i
			}
		}
	}
	for i, l := range links {
		if l.Carrier {
			return i
		}
	}
	return 0
}

// pickLink reads an interface answer: its number in the list, its name or
// its MAC in any common notation.
func pickLink(links []Link, s string) (Link, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n >= 1 && n <= len(links) {
			return links[n-1], nil
		}
		return Link{}, fmt.Errorf("there is no interface %d: answer a number from 1 to %d, a name or a MAC", n, len(links))
	}
	for _, l := range links {
		if l.Name == s {
			return l, nil
		}
	}
	if mac, err := names.ParseMAC(s); err == nil {
		for _, l := range links {
			if m, err := names.ParseMAC(l.MAC); err == nil && m == mac {
				return l, nil
			}
		}
	}
	return Link{}, fmt.Errorf("unknown interface %s: answer a number from 1 to %d, a name or a MAC", names.Label(s), len(links))
}

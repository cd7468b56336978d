package e2e

import (
	"context"
	"fmt"

	"github.com/chromedp/chromedp"
)

// Short names for the selectors and actions the flows use. Every selector
// is CSS (document.querySelector), unless it is an XPath search.

type action = chromedp.Action[chromedp.Void]

func click(sel string) action   { return chromedp.Click(chromedp.CSS(sel)) }
func visible(sel string) action { return chromedp.WaitVisible(chromedp.CSS(sel)) }
func gone(sel string) action    { return chromedp.WaitNotPresent(chromedp.CSS(sel)) }
func xvisible(xpath string) action {
	return chromedp.WaitVisible(chromedp.Search(xpath))
}
func typeIn(sel, text string) action { return chromedp.SendKeys(chromedp.CSS(sel), text) }

// void drops an action's value.
func void[T any](a chromedp.Action[T]) action {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := a(ctx, t)
		return chromedp.Void{}, err
	}
}

// until waits until a JavaScript expression is true.
func until(expr string) action { return void(chromedp.Poll[bool](expr)) }

// setInput replaces a controlled input's value the way typing does (an
// input event), for fields that already hold text.
func setInput(sel, value string) action {
	return void(chromedp.Evaluate[bool](fmt.Sprintf(`(() => {
		const el = document.querySelector(%q);
		el.value = %q;
		el.dispatchEvent(new Event('input', { bubbles: true }));
		return true;
	})()`, sel, value)))
}

func row(mac string) string { return fmt.Sprintf(`tr[data-mac=%q]`, mac) }
func rowIn(mac, state string) string {
	return fmt.Sprintf(`tr[data-mac=%q][data-state=%q]`, mac, state)
}

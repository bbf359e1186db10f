package main

import (
	"context"
	"errors"
	"fmt"
)

const cancelHelp = `Cancels jobs: a queued job at once, a running one when its worker next
checks (between chunks). A finished job cannot be canceled (409 conflict).`

// runCancel is "ttsctl cancel".
func runCancel(ctx context.Context, a *app, args []string) int {
	fs := a.flagSet("cancel", "ID...", cancelHelp)
	if code, done := parse(fs, args); done {
		return code
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(a.stderr, "ttsctl: cancel needs at least one job id")
		fs.Usage()
		return exitUsage
	}
	c, err := a.client()
	if err != nil {
		return a.fail(err)
	}
	code := exitOK
	for _, id := range fs.Args() {
		j, err := c.cancel(ctx, id)
		var ae *apiError
		switch {
		case errors.As(err, &ae) && ae.Code == "conflict":
			code = worst(code, a.fail(fmt.Errorf("%w (nothing to cancel)", err), id))
		case err != nil:
			code = worst(code, a.fail(err, id))
			if ctx.Err() != nil {
				return code
			}
		case j.Status == statusCanceled:
			fmt.Fprintf(a.stdout, "%s canceled\n", id)
		default:
			fmt.Fprintf(a.stdout, "%s cancel requested (%s: its worker stops at the next chunk)\n", id, j.Status)
		}
	}
	return code
}

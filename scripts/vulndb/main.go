// Command vulndb lets govulncheck run offline: it builds a Go vulnerability
// database from the golang.org/x/vulndb module, and checks govulncheck's
// findings against an allowlist. scripts/vulncheck.sh drives both.
//
// # build
//
//	vulndb build -src $VULNDB_DIR/data/osv -out DIR -modified 2026-11-05T23:49:57Z
//
// vuln.go.dev, the database govulncheck normally queries, is not reachable
// from CI, but the Go module proxy serves golang.org/x/vulndb, whose data/osv
// holds one OSV entry per Go vulnerability: the entries vuln.go.dev serves,
// except that their "modified" (and mostly "published") times are zero, as
// upstream fills them from git commit dates when it deploys and a module zip
// has no git history. build writes the v1 layout that govulncheck's
// -db file:///DIR reads (https://go.dev/security/vuln/database#api):
//
//	index/db.json       {"modified": T}
//	index/modules.json  [{"path", "vulns": [{"id", "modified", "fixed"}]}]
//	index/vulns.json    [{"id", "modified", "aliases"}]
//	ID/<ID>.json        the OSV entry
//
// A zero "modified" becomes -modified (the snapshot time: the vulndb
// pseudo-version's commit time), so db.json, and govulncheck's output, tell
// which snapshot was used. "published" is left as shipped; everything else
// in an entry is copied unchanged.
//
// # check
//
//	govulncheck -format json ./... | vulndb check -allow FILE
//
// check lists the vulnerabilities that the code calls (govulncheck's
// symbol-level findings, the ones that make govulncheck exit 3) and exits 3
// unless every one of them is in the allowlist. Each allowlist line is an
// OSV ID and the reason it is accepted; '#' starts a comment. IDs in the
// allowlist that are no longer found are reported, so the list can shrink.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: vulndb build -src DIR -out DIR -modified TIME | vulndb check -allow FILE < govulncheck.json")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "build":
		err = build(args)
	case "check":
		err = check(args, os.Stdin, os.Stdout)
	default:
		err = fmt.Errorf("unknown subcommand %q (want build or check)", cmd)
	}
	var exit exitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		os.Exit(int(exit))
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "vulndb:", err)
		os.Exit(1)
	}
}

// exitError is an exit status whose reason was already printed.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

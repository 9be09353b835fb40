// Command fileclient writes a file to a DittoFS server over NFS (and SMB when given a login) and
// reads it back through each protocol, comparing the bytes: what `make demo` runs to show the
// share is usable. It exits non-zero on any difference or failure.
//
//	go run ./hack/fileclient --nfs 127.0.1.2:12049 [--smb 127.0.1.2:1445 --user admin --password ...]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/dittofs/dittofs-operator/test/fileclient"
)

func main() {
	nfsAddr := flag.String("nfs", "", "NFS address host:port (required)")
	export := flag.String("export", "/export", "NFS export / SMB share")
	smbAddr := flag.String("smb", "", "SMB address host:port (optional)")
	user := flag.String("user", "admin", "SMB user")
	password := flag.String("password", os.Getenv("DITTOFS_PASSWORD"), "SMB password (env DITTOFS_PASSWORD)")
	name := flag.String("name", "hello-from-make-demo.txt", "file name")
	flag.Parse()
	if *nfsAddr == "" {
		fmt.Fprintln(os.Stderr, "fileclient: --nfs is required")
		os.Exit(2)
	}
	data := []byte(fmt.Sprintf("written by make demo over NFS at %s\n", time.Now().UTC().Format(time.RFC3339)))
	check := func(what string, got []byte, err error) {
		if err == nil && !bytes.Equal(got, data) {
			err = fmt.Errorf("read %d bytes that differ from the %d written", len(got), len(data))
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "fileclient: %s: %v\n", what, err)
			os.Exit(1)
		}
		fmt.Printf("%-28s %d bytes, identical\n", what+":", len(got))
	}
	if err := fileclient.WriteNFS(*nfsAddr, *export, *name, data); err != nil {
		fmt.Fprintf(os.Stderr, "fileclient: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("%-28s %s:%s/%s (%d bytes)\n", "written over NFS:", *nfsAddr, *export, *name, len(data))
	got, err := fileclient.ReadNFS(*nfsAddr, *export, *name)
	check("read back over NFS", got, err)
	if *smbAddr != "" {
		got, err := fileclient.ReadSMB(*smbAddr, *user, *password, *export, *name)
		check("read back over SMB", got, err)
	}
}

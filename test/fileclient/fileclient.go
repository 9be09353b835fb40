// Package fileclient reads and writes files on a DittoFS server the way its users do: over NFSv3
// (github.com/willscott/go-nfs-client, a userspace client: no kernel mount, no portmapper —
// DittoFS serves MOUNT and NFS on one TCP port) and over SMB2/3 (github.com/hirochachacha/go-smb2,
// NTLM). The e2e test and `make demo` (hack/fileclient) use it.
package fileclient

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	smb2 "github.com/hirochachacha/go-smb2"
	"github.com/willscott/go-nfs-client/nfs"
	"github.com/willscott/go-nfs-client/nfs/rpc"
)

// dialTimeout bounds each TCP connect.
const dialTimeout = 5 * time.Second

// nfsTarget mounts export at addr (host:port) as uid/gid 0 (AUTH_UNIX, as a root client) and
// returns the target and a function that unmounts and closes.
func nfsTarget(addr, export string) (*nfs.Target, func(), error) {
	// The client binds a random local port from 49152-65535 without checking it is free: a
	// port in use fails the dial, so a few other draws are tried.
	var client *rpc.Client
	var err error
	for range 5 {
		if client, err = rpc.DialTCP("tcp", addr, false); !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("NFS connect to %s: %w", addr, err)
	}
	m := &nfs.Mount{Client: client}
	host, _ := os.Hostname()
	target, err := m.Mount(export, rpc.NewAuthUnix(host, 0, 0).Auth())
	if err != nil {
		client.Close()
		return nil, nil, fmt.Errorf("NFS mount %s:%s: %w", addr, export, err)
	}
	return target, func() { _ = m.Unmount(); client.Close() }, nil
}

// WriteNFS creates (or overwrites) name on the export and writes data to it.
func WriteNFS(addr, export, name string, data []byte) error {
	target, done, err := nfsTarget(addr, export)
	if err != nil {
		return err
	}
	defer done()
	f, err := target.OpenFile(name, 0o644)
	if err != nil {
		return fmt.Errorf("NFS create %s: %w", name, err)
	}
	if _, err := io.Copy(f, bytes.NewReader(data)); err != nil {
		_ = f.Close()
		return fmt.Errorf("NFS write %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("NFS commit %s: %w", name, err)
	}
	return nil
}

// ReadNFS reads name from the export.
func ReadNFS(addr, export, name string) ([]byte, error) {
	target, done, err := nfsTarget(addr, export)
	if err != nil {
		return nil, err
	}
	defer done()
	f, err := target.Open(name)
	if err != nil {
		return nil, fmt.Errorf("NFS open %s: %w", name, err)
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("NFS read %s: %w", name, err)
	}
	return b, nil
}

// smbShare logs in as user and connects to the share (its name without the leading slash).
func smbShare(addr, user, password, share string) (*smb2.Share, func(), error) {
	conn, err := net.DialTimeout("tcp", addr, dialTimeout)
	if err != nil {
		return nil, nil, fmt.Errorf("SMB connect to %s: %w", addr, err)
	}
	d := &smb2.Dialer{Initiator: &smb2.NTLMInitiator{User: user, Password: password}}
	session, err := d.Dial(conn)
	if err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("SMB session at %s as %s: %w", addr, user, err)
	}
	fs, err := session.Mount(strings.TrimPrefix(share, "/"))
	if err != nil {
		_ = session.Logoff()
		_ = conn.Close()
		return nil, nil, fmt.Errorf("SMB tree connect to %s: %w", share, err)
	}
	return fs, func() { _ = fs.Umount(); _ = session.Logoff(); _ = conn.Close() }, nil
}

// WriteSMB creates (or overwrites) name on the share and writes data to it, flushed.
func WriteSMB(addr, user, password, share, name string, data []byte) error {
	fs, done, err := smbShare(addr, user, password, share)
	if err != nil {
		return err
	}
	defer done()
	f, err := fs.Create(name)
	if err != nil {
		return fmt.Errorf("SMB create %s: %w", name, err)
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("SMB write %s: %w", name, err)
	}
	return nil
}

// ReadSMB reads name from the share.
func ReadSMB(addr, user, password, share, name string) ([]byte, error) {
	fs, done, err := smbShare(addr, user, password, share)
	if err != nil {
		return nil, err
	}
	defer done()
	b, err := fs.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("SMB read %s: %w", name, err)
	}
	return b, nil
}

package dfstest

import (
	"strings"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/keytab"
)

// Krb5Conf names the test realm EXAMPLE.COM and a KDC that is never contacted (a service only
// decrypts the tickets clients bring).
const Krb5Conf = `[libdefaults]
  default_realm = EXAMPLE.COM
[realms]
  EXAMPLE.COM = {
    kdc = 127.0.0.1:88
  }
`

// Keytab is a keytab (MIT format) with an AES-256 key for each principal (service/host@REALM).
func Keytab(t testing.TB, principals ...string) []byte {
	t.Helper()
	kt := keytab.New()
	for _, p := range principals {
		at := strings.LastIndex(p, "@")
		if at < 0 {
			t.Fatalf("dfstest.Keytab: principal %q has no @REALM", p)
		}
		if err := kt.AddEntry(p[:at], p[at+1:], "a-service-password", time.Now(), 1, etypeID.AES256_CTS_HMAC_SHA1_96); err != nil {
			t.Fatal(err)
		}
	}
	b, err := kt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

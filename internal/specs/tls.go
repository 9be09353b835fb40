package specs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// The REST API's certificate (spec.controlPlane.tls). In mode Operator the Secret
// <name>-api-tls holds a CA made for the server (ca.crt, ca.key) and the serving certificate it
// signed (tls.crt, tls.key); the pod mounts only tls.crt and tls.key.
const (
	APITLSCAKey   = "ca.crt"
	APITLSCAKeyPK = "ca.key"
	APITLSCert    = "tls.crt"
	APITLSKey     = "tls.key"

	VolumeAPITLS    = "api-tls"
	APITLSMountPath = "/var/run/dittofs/api-tls"

	// APICertValidity is the serving certificate's lifetime; it is renewed APICertRenewBefore
	// its end. The CA lives APICAValidity, so clients that trust ca.crt keep trusting renewals.
	APICertValidity    = 365 * 24 * time.Hour
	APICertRenewBefore = 30 * 24 * time.Hour
	APICAValidity      = 10 * 365 * 24 * time.Hour
)

// APITLSSecretName is the Secret with the REST API's certificate: the operator's
// <name>-api-tls, or spec.controlPlane.tls.secretName in mode Secret ("" when TLS is off).
func APITLSSecretName(ds *v1alpha1.DittoServer) string {
	switch ds.Spec.APITLSMode() {
	case v1alpha1.APITLSDisabled:
		return ""
	case v1alpha1.APITLSSecret:
		return ds.Spec.ControlPlane.TLS.SecretName
	}
	return OperatorAPITLSSecretName(ds)
}

// OperatorAPITLSSecretName is the Secret the operator issues the certificate into.
func OperatorAPITLSSecretName(ds *v1alpha1.DittoServer) string { return ds.Name + "-api-tls" }

// APIScheme is https when the REST API serves TLS, else http.
func APIScheme(ds *v1alpha1.DittoServer) string {
	if ds.Spec.APITLSEnabled() {
		return "https"
	}
	return "http"
}

// APIServerName is the name the operator verifies the API's certificate against, whatever
// address it dials (the Service's DNS name or the pod's IP).
func APIServerName(ds *v1alpha1.DittoServer) string {
	return fmt.Sprintf("%s-api.%s.svc", ds.Name, ds.Namespace)
}

// APIDNSNames are the names the operator's certificate is valid for: the -api Service in each
// form a client in the cluster uses, and localhost (kubectl port-forward).
func APIDNSNames(ds *v1alpha1.DittoServer, clusterDomain string) []string {
	svc := ds.Name + "-api"
	return []string{svc, svc + "." + ds.Namespace, APIServerName(ds), APIServerName(ds) + "." + clusterDomain, "localhost"}
}

// IssueAPICA makes the server's CA.
func IssueAPICA(ds *v1alpha1.DittoServer, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: fmt.Sprintf("DittoFS API CA %s/%s", ds.Namespace, ds.Name)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(APICAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	return encode(der, key)
}

// IssueAPICertificate signs a serving certificate for the server's API with its CA.
func IssueAPICertificate(ds *v1alpha1.DittoServer, clusterDomain string, caPEM, caKeyPEM []byte, now time.Time) (certPEM, keyPEM []byte, err error) {
	ca, caKey, err := parsePair(caPEM, caKeyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("the CA in %s: %w", OperatorAPITLSSecretName(ds), err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: APIServerName(ds)},
		DNSNames:     APIDNSNames(ds, clusterDomain),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(APICertValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	return encode(der, key)
}

// APICertificateRenewal reports whether the operator's Secret data needs a new serving
// certificate (missing, not from its CA, other names, or within APICertRenewBefore of its end)
// and, when it does not, when it will.
func APICertificateRenewal(ds *v1alpha1.DittoServer, clusterDomain string, data map[string][]byte, now time.Time) (bool, time.Time) {
	ca, _, err := parsePair(data[APITLSCAKey], data[APITLSCAKeyPK])
	if err != nil {
		return true, now
	}
	cert, _, err := parsePair(data[APITLSCert], data[APITLSKey])
	if err != nil || cert.CheckSignatureFrom(ca) != nil ||
		!slices.Equal(cert.DNSNames, APIDNSNames(ds, clusterDomain)) {
		return true, now
	}
	renewAt := cert.NotAfter.Add(-APICertRenewBefore)
	return !now.Before(renewAt), renewAt
}

// ValidAPICA reports whether data holds a usable CA (certificate and matching key).
func ValidAPICA(data map[string][]byte) bool {
	ca, _, err := parsePair(data[APITLSCAKey], data[APITLSCAKeyPK])
	return err == nil && ca.IsCA
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

func encode(der []byte, key *ecdsa.PrivateKey) ([]byte, []byte, error) {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

// parsePair parses a PEM certificate and its EC private key and checks that they match.
func parsePair(certPEM, keyPEM []byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, errors.New("no PEM certificate and key")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, nil, errors.New("the key does not match the certificate")
	}
	return cert, key, nil
}

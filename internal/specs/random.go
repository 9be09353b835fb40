package specs

import (
	"crypto/rand"
	"fmt"
	"math/big"
)

// passwordAlphabet leaves out characters that are easy to misread (0/O, 1/l/I).
const passwordAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"

// RandomString returns n characters from a cryptographic source, for generated passwords and
// signing keys.
func RandomString(n int) (string, error) {
	b := make([]byte, n)
	max := big.NewInt(int64(len(passwordAlphabet)))
	for i := range b {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("generating a random secret: %w", err)
		}
		b[i] = passwordAlphabet[v.Int64()]
	}
	return string(b), nil
}

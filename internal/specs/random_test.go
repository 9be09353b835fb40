package specs

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRandomString(t *testing.T) {
	a, err := RandomString(48)
	require.NoError(t, err)
	b, err := RandomString(48)
	require.NoError(t, err)
	assert.Len(t, a, 48)
	assert.NotEqual(t, a, b)
}

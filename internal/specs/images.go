package specs

import (
	"os"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// DefaultImage is the DittoFS image for servers without spec.image.
func DefaultImage() string { return envOr(EnvRelatedImage, v1alpha1.DefaultImage) }

// ServerImage is the image a server runs: spec.image, else DefaultImage.
func ServerImage(ds *v1alpha1.DittoServer) string {
	if ds.Spec.Image != "" {
		return ds.Spec.Image
	}
	return DefaultImage()
}

// PostgresClientImage is the image of the wait-for-postgres init container.
func PostgresClientImage() string {
	return envOr(EnvRelatedImagePostgresClient, DefaultPostgresClientImage)
}

// PerconaImages are the container images of a new Percona cluster.
type PerconaImages struct {
	Postgres, PGBackRest string
}

// PerconaImagesFromEnv returns the default images, overridden by the RELATED_IMAGE_* env.
func PerconaImagesFromEnv() PerconaImages {
	return PerconaImages{
		Postgres:   envOr(EnvRelatedImagePerconaPostgres, DefaultPerconaPostgresImage),
		PGBackRest: envOr(EnvRelatedImagePerconaPGBackRest, DefaultPerconaPGBackRestImage),
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

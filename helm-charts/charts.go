// Package charts embeds the operand charts, so the operator binary carries them.
package charts

import "embed"

// FS holds every chart directory below helm-charts/.
//
//go:embed all:dittoserver
var FS embed.FS

# Operator image: static binary (the chart and watches.yaml are embedded) on distroless nonroot.
# Build: make docker-build IMG=<registry>/dittofs-operator:<tag>
FROM golang:1.26 AS builder
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG COMMIT=unknown
WORKDIR /workspace
COPY go.mod go.sum ./
RUN go mod download
COPY main.go version.go watches.yaml VERSION ./
COPY api/ api/
COPY internal/ internal/
COPY helm-charts/ helm-charts/
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -ldflags "-s -w -X main.buildCommit=${COMMIT}" -o manager .

FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager .
USER 65532:65532
ENTRYPOINT ["/manager"]

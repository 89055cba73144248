#!/bin/sh
# Regenerates the Go code of proto/auth.proto. Needs protoc (Debian:
# protobuf-compiler), protoc-gen-go and protoc-gen-go-grpc on PATH:
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@latest
#   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@latest
# Usage: gen.sh [OUTDIR]   (default: this directory's proto/)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/proto}
PATH=$PATH:$(go env GOPATH)/bin
mkdir -p "$out"
protoc -I "$here/proto" \
	--go_out="$out" --go_opt=paths=source_relative \
	--go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
	"$here/proto/auth.proto"

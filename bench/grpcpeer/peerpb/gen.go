// Package peerpb is the generated protobuf and gRPC code of peer.proto, the
// gRPC peer's messages and services. Do not edit the .pb.go files: change
// peer.proto and regenerate with protoc (Debian's protobuf-compiler, 3.21)
// and the plugins at the versions below, which is what made them:
//
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
//	go generate ./bench/grpcpeer/peerpb
package peerpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative peer.proto

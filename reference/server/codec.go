package server

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	pb "github.com/churnlab/churnlab/reference/proto"
)

// encodedUpdate is a ConfigUpdate marshaled once, then sent as is on every
// stream it goes to: a change fanned out to 10,000 streams is encoded once,
// not 10,000 times.
type encodedUpdate struct {
	wire          []byte
	fragmentBytes int
}

func encodeUpdate(u *pb.ConfigUpdate) (*encodedUpdate, error) {
	wire, err := proto.Marshal(u)
	if err != nil {
		return nil, err
	}
	return &encodedUpdate{wire: wire, fragmentBytes: len(u.GetFragment())}, nil
}

// sharedEncodingCodec is the proto codec, except that it passes an
// encodedUpdate through untouched. GRPCOptions installs it.
type sharedEncodingCodec struct{ encoding.CodecV2 }

func (c sharedEncodingCodec) Marshal(v any) (mem.BufferSlice, error) {
	if e, ok := v.(*encodedUpdate); ok {
		return mem.BufferSlice{mem.SliceBuffer(e.wire)}, nil // read-only, never pooled
	}
	return c.CodecV2.Marshal(v)
}

func newSharedEncodingCodec() sharedEncodingCodec {
	return sharedEncodingCodec{encoding.GetCodecV2("proto")}
}

package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/churnlab/churnlab/reference/proto"
	"github.com/churnlab/churnlab/reference/store"
)

// Put implements ConfigAdmin.Put: the hunt's whole config is replaced in
// one store write, so a watcher sees the old fragment or the new one,
// never a mix (R6).
func (s *Server) Put(ctx context.Context, req *pb.PutRequest) (*pb.PutResponse, error) {
	if err := s.opts.Tokens.authorizeAdmin(ctx); err != nil {
		return nil, err
	}
	if n := len(req.GetFragment()); n > s.opts.MaxFragmentBytes {
		return nil, status.Errorf(codes.InvalidArgument, "fragment of hunt %q is %d bytes, over the %d-byte limit", req.GetHunt(), n, s.opts.MaxFragmentBytes)
	}
	if _, err := store.ValidateHunt(req.GetHunt(), req.GetLabels()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	v, err := s.opts.Store.Put(ctx, req.GetHunt(), req.GetLabels(), req.GetFragment())
	if err != nil {
		return nil, storeStatus(err)
	}
	return &pb.PutResponse{Version: v}, nil
}

// Delete implements ConfigAdmin.Delete.
func (s *Server) Delete(ctx context.Context, req *pb.DeleteRequest) (*pb.DeleteResponse, error) {
	if err := s.opts.Tokens.authorizeAdmin(ctx); err != nil {
		return nil, err
	}
	if req.GetHunt() == "" {
		return nil, status.Error(codes.InvalidArgument, store.ErrNoHuntID.Error())
	}
	if err := s.opts.Store.Delete(ctx, req.GetHunt()); err != nil {
		return nil, storeStatus(err)
	}
	return &pb.DeleteResponse{}, nil
}

// Versions implements ConfigAdmin.Versions, from this replica's index.
func (s *Server) Versions(ctx context.Context, _ *pb.VersionsRequest) (*pb.VersionsResponse, error) {
	if err := s.opts.Tokens.authorizeAdmin(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]uint64, len(s.hunts))
	for id, h := range s.hunts {
		out[id] = h.version
	}
	return &pb.VersionsResponse{Versions: out}, nil
}

// storeStatus maps store errors to gRPC status codes, at the edge.
func storeStatus(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, store.ErrUnavailable):
		return status.Errorf(codes.Unavailable, "config store unavailable, write not applied: %v", err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Internal, err.Error())
}

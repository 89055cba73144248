package grpcwire

import "testing"

func TestIsGRPC(t *testing.T) {
	for v, want := range map[string]bool{
		"application/grpc": true, "application/grpc+proto": true, "application/grpc+json": true,
		"application/grpc-web": false, "application/grpc-web-text": false, "application/grpcx": false,
		"Application/grpc": false, "application/json": false, "": false, "application/grp": false,
	} {
		if got := IsGRPC([]byte(v)); got != want {
			t.Errorf("IsGRPC(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestFromHTTPFollowsEnvoysMapping(t *testing.T) {
	for http, want := range map[int]int{
		400: Internal, 401: Unauthenticated, 403: PermissionDenied, 404: Unimplemented,
		429: Unavailable, 502: Unavailable, 503: Unavailable, 504: Unavailable,
		408: Unknown, 413: Unknown, 500: Unknown, 200: Unknown,
	} {
		if got := FromHTTP(http); got != want {
			t.Errorf("FromHTTP(%d) = %d, want %d", http, got, want)
		}
	}
}

func TestAppendMessagePercentEncodes(t *testing.T) {
	got := string(AppendMessage(nil, "no route: 100% \"x\"\n\xc3\xa9~"))
	if want := "no route: 100%25 \"x\"%0A%C3%A9~"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

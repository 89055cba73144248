package accesslog

import (
	"time"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

// Record is what the HTTP connection manager (or tcp_proxy) knows about a
// finished stream. Request and Response may be nil (a tcp_proxy connection,
// a stream reset before its response); operators on them then print "-".
// The pointers are read only during Format and Logger.Log.
type Record struct {
	Info     *httpfilter.StreamInfo
	Request  *httpfilter.RequestHeaders
	Response *httpfilter.ResponseHeaders
	// Duration is the stream's total duration, from Info.Start to the last
	// byte sent downstream (%DURATION%).
	Duration time.Duration
	// LocalReplyBody is the text of the local reply being formatted by the
	// connection manager's local_reply_config (%LOCAL_REPLY_BODY%); empty
	// elsewhere.
	LocalReplyBody string
}

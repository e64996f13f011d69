package ingest

import (
	"compress/gzip"
	"compress/zlib"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/klauspost/compress/zstd"
	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// tracesPath is the OTLP/HTTP traces endpoint.
const tracesPath = "/v1/traces"

// Content types of OTLP/HTTP.
const (
	contentTypeProtobuf = "application/x-protobuf"
	contentTypeJSON     = "application/json"
)

// bodyEncoding is the payload encoding of an OTLP/HTTP request, and so of
// its response.
type bodyEncoding uint8

const (
	encodingUnknown bodyEncoding = iota
	encodingProtobuf
	encodingJSON
)

func encodingOf(contentType string) bodyEncoding {
	// The common cases without ParseMediaType's allocations.
	switch contentType {
	case contentTypeProtobuf:
		return encodingProtobuf
	case contentTypeJSON:
		return encodingJSON
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return encodingUnknown
	}
	switch mt {
	case contentTypeProtobuf:
		return encodingProtobuf
	case contentTypeJSON:
		return encodingJSON
	}
	return encodingUnknown
}

func (r *Receiver) newHTTPServer() *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc(tracesPath, r.serveTraces)
	// An SDK given OTEL_EXPORTER_OTLP_ENDPOINT sends metrics and logs
	// here too: say plainly that only traces are taken, and where.
	for _, p := range []string{"/v1/metrics", "/v1/logs"} {
		mux.HandleFunc(p, r.notTraces)
	}
	mux.HandleFunc("/", r.notTraces)
	var tc *tls.Config
	if r.tls != nil {
		tc = r.tls.ServerConfig("h2", "http/1.1")
	}
	return &http.Server{
		Handler:           mux,
		TLSConfig:         tc,
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		IdleTimeout:       httpIdleTimeout,
		ErrorLog:          slog.NewLogLogger(r.logger.Handler(), slog.LevelDebug),
	}
}

// notTraces answers every path but /v1/traces: 404 with a body that names
// the traces endpoint.
func (r *Receiver) notTraces(w http.ResponseWriter, req *http.Request) {
	enc := encodingOf(req.Header.Get("Content-Type"))
	if enc == encodingUnknown {
		enc = encodingJSON
	}
	writeStatus(w, enc, http.StatusNotFound, codes.NotFound, fmt.Sprintf(
		"tailgate takes OTLP traces only, at POST %s; %s is not served. Point only the traces exporter here: "+
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://<host>:4318%s (OTEL_EXPORTER_OTLP_ENDPOINT would send metrics and logs here too)",
		tracesPath, req.URL.Path, tracesPath))
}

// serveTraces serves POST /v1/traces.
func (r *Receiver) serveTraces(w http.ResponseWriter, req *http.Request) {
	enc := encodingOf(req.Header.Get("Content-Type"))
	refuse := func(httpCode int, o outcome, code codes.Code, msg string) {
		r.count(protocolHTTP, o)
		if o == outcomeInvalid || o == outcomeTooLarge || o == outcomeUnauthenticated || o == outcomeForbidden {
			r.logInvalid(req.Context(), protocolHTTP, req.RemoteAddr, msg)
		}
		writeStatus(w, enc, httpCode, code, msg)
	}
	// Authentication first: a caller without a valid token learns
	// nothing else about the endpoint.
	ctx, o, msg := r.authenticate(req.Context(), req.Header.Get("Authorization"))
	switch o {
	case outcomeUnauthenticated:
		w.Header().Set("WWW-Authenticate", `Bearer realm="tailgate OTLP"`)
		refuse(http.StatusUnauthorized, o, codes.Unauthenticated, msg)
		return
	case outcomeForbidden:
		refuse(http.StatusForbidden, o, codes.PermissionDenied, msg)
		return
	}
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		refuse(http.StatusMethodNotAllowed, outcomeInvalid, codes.Unimplemented,
			fmt.Sprintf("method %s not allowed, use POST", req.Method))
		return
	}
	if enc == encodingUnknown {
		refuse(http.StatusUnsupportedMediaType, outcomeInvalid, codes.InvalidArgument,
			fmt.Sprintf("unsupported content type %q, use %s or %s", req.Header.Get("Content-Type"), contentTypeProtobuf, contentTypeJSON))
		return
	}
	coding := ""
	switch ce := strings.ToLower(strings.TrimSpace(req.Header.Get("Content-Encoding"))); ce {
	case "", "identity":
	case "gzip", "x-gzip":
		coding = "gzip"
	case "zstd", "deflate":
		coding = ce
	default:
		refuse(http.StatusUnsupportedMediaType, outcomeInvalid, codes.InvalidArgument,
			fmt.Sprintf("unsupported content encoding %q, use gzip, zstd, deflate or none", ce))
		return
	}
	gzipped := coding != "" // compressed: the size limit applies after decompression
	limit := int64(r.cfg.MaxMessageSize)
	if req.ContentLength > limit {
		refuse(http.StatusRequestEntityTooLarge, outcomeTooLarge, codes.ResourceExhausted,
			fmt.Sprintf("request body is %d bytes, max_message_size is %s", req.ContentLength, r.cfg.MaxMessageSize))
		return
	}
	if !r.admitted(protocolHTTP) {
		w.Header().Set("Retry-After", retryAfterSeconds(defaultRetryAfter))
		refuse(http.StatusTooManyRequests, outcomeBackpressure, codes.ResourceExhausted, errMemoryShort)
		return
	}
	if !r.acquire(protocolHTTP) {
		w.Header().Set("Retry-After", retryAfterSeconds(defaultRetryAfter))
		refuse(http.StatusTooManyRequests, outcomeBackpressure, codes.ResourceExhausted, "too many concurrent requests")
		return
	}
	defer r.release(protocolHTTP)
	if enc == encodingJSON {
		if !r.acquireJSON() {
			w.Header().Set("Retry-After", retryAfterSeconds(defaultRetryAfter))
			refuse(http.StatusTooManyRequests, outcomeBackpressure, codes.ResourceExhausted,
				fmt.Sprintf("too many concurrent OTLP/JSON requests (max_concurrent_json_requests is %d); protobuf is not limited by it", r.cfg.MaxConcurrentJSONRequests))
			return
		}
		defer r.releaseJSON()
	}

	buf := r.getBuffer()
	defer r.putBuffer(buf)
	var body io.Reader = http.MaxBytesReader(w, req.Body, limit)
	switch coding {
	case "gzip":
		zr, err := r.getGzip(body)
		if err != nil {
			refuse(http.StatusBadRequest, outcomeInvalid, codes.InvalidArgument, "decompress gzip body: "+err.Error())
			return
		}
		defer r.gzips.Put(zr)
		body = zr
	case "zstd":
		zr, err := r.getZstd(body)
		if err != nil {
			refuse(http.StatusBadRequest, outcomeInvalid, codes.InvalidArgument, "decompress zstd body: "+err.Error())
			return
		}
		defer r.zstds.Put(zr)
		body = zr
	case "deflate":
		// HTTP's deflate coding is the zlib format (RFC 9110 8.4.1.2), as
		// the Collector's exporters send it.
		zr, err := zlib.NewReader(body)
		if err != nil {
			refuse(http.StatusBadRequest, outcomeInvalid, codes.InvalidArgument, "decompress deflate (zlib) body: "+err.Error())
			return
		}
		defer zr.Close()
		body = zr
	}
	var err error
	buf.b, err = readLimited(buf.b[:0], body, limit, req.ContentLength, gzipped)
	if err != nil {
		if errors.Is(err, errTooLarge) || errors.As(err, new(*http.MaxBytesError)) ||
			errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
			what := "request body"
			if gzipped {
				what = "decompressed request body"
			}
			refuse(http.StatusRequestEntityTooLarge, outcomeTooLarge, codes.ResourceExhausted,
				fmt.Sprintf("%s is larger than max_message_size %s", what, r.cfg.MaxMessageSize))
			return
		}
		what := "read body"
		if gzipped {
			what = "decompress " + coding + " body"
		}
		refuse(http.StatusBadRequest, outcomeInvalid, codes.InvalidArgument, what+": "+err.Error())
		return
	}

	r.metrics.by[protocolHTTP].bytes.Observe(float64(len(buf.b)))
	payload := buf.b
	jsonRejected, jsonReason := 0, ""
	if enc == encodingJSON {
		// OTLP/JSON is rare next to protobuf; decoding it with pdata and
		// re-encoding keeps a single validating parser for both. pdata's
		// decoder spends memory on every level and every object before it
		// could refuse a body, so a scan of the bytes refuses deep bodies
		// first and sizes what decoding the rest will take.
		containers, err := scanJSON(payload, maxJSONDepth)
		if err != nil {
			refuse(http.StatusBadRequest, outcomeInvalid, codes.InvalidArgument, "invalid OTLP/JSON: "+err.Error())
			return
		}
		cost := jsonDecodeCost(len(payload), containers)
		if cost > jsonDecodeBudget {
			refuse(http.StatusRequestEntityTooLarge, outcomeTooLarge, codes.ResourceExhausted,
				fmt.Sprintf("decoding this OTLP/JSON request (%d bytes, %d objects and arrays) would take about %s, more than the %s allowed; send smaller requests, or protobuf",
					len(payload), containers, units.Bytes(cost), units.Bytes(jsonDecodeBudget)))
			return
		}
		if !r.jsonBudget.TryAcquire(cost) {
			w.Header().Set("Retry-After", retryAfterSeconds(defaultRetryAfter))
			refuse(http.StatusTooManyRequests, outcomeBackpressure, codes.ResourceExhausted,
				"OTLP/JSON requests being decoded use all of their memory budget, retry later")
			return
		}
		defer r.jsonBudget.Release(cost)
		er := ptraceotlp.NewExportRequest()
		if err := er.UnmarshalJSON(payload); err != nil {
			// One bad span must not cost the others: decode span by span,
			// as protobuf's partial success would have it.
			var splitErr error
			er, jsonRejected, jsonReason, splitErr = splitJSON(payload)
			if splitErr != nil {
				refuse(http.StatusBadRequest, outcomeInvalid, codes.InvalidArgument, "invalid OTLP/JSON: "+err.Error())
				return
			}
		}
		if payload, err = er.MarshalProto(); err != nil {
			refuse(http.StatusBadRequest, outcomeInvalid, codes.InvalidArgument, "re-encode OTLP/JSON: "+err.Error())
			return
		}
	}

	res := r.process(ctx, protocolHTTP, payload)
	if jsonRejected > 0 && (res.outcome == outcomeOK || res.outcome == outcomePartial) {
		r.metrics.by[protocolHTTP].rejected.Add(float64(jsonRejected))
		if res.rejected == 0 {
			res.message = fmt.Sprintf("%d spans refused as invalid OTLP/JSON; the first: %s", jsonRejected, jsonReason)
		} else {
			res.message = fmt.Sprintf("%s; and %d spans refused as invalid OTLP/JSON, the first: %s", res.message, jsonRejected, jsonReason)
		}
		res.outcome, res.rejected = outcomePartial, res.rejected+jsonRejected
	}
	switch res.outcome {
	case outcomeOK, outcomePartial:
		r.count(protocolHTTP, res.outcome)
		writeSuccess(w, enc, res.rejected, res.message)
	case outcomeInvalid:
		refuse(http.StatusBadRequest, outcomeInvalid, codes.InvalidArgument, res.message)
	case outcomeBackpressure:
		w.Header().Set("Retry-After", retryAfterSeconds(res.retry))
		refuse(http.StatusTooManyRequests, outcomeBackpressure, codes.ResourceExhausted, res.message)
	default:
		w.Header().Set("Retry-After", retryAfterSeconds(res.retry))
		refuse(http.StatusServiceUnavailable, outcomeUnavailable, codes.Unavailable, res.message)
	}
}

// retryAfterSeconds formats d for a Retry-After header: whole seconds,
// rounded up.
func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10)
}

// writeSuccess writes an ExportTraceServiceResponse: empty for full
// success, with partial_success when spans were rejected.
func writeSuccess(w http.ResponseWriter, enc bodyEncoding, rejected int, message string) {
	var body []byte
	if enc == encodingJSON {
		w.Header().Set("Content-Type", contentTypeJSON)
		if rejected == 0 {
			body = []byte("{}")
		} else {
			resp := ptraceotlp.NewExportResponse()
			resp.PartialSuccess().SetRejectedSpans(int64(rejected))
			resp.PartialSuccess().SetErrorMessage(message)
			var err error
			if body, err = resp.MarshalJSON(); err != nil {
				// Cannot happen for these two fields; fall back to a bare 200.
				body = []byte("{}")
			}
		}
	} else {
		w.Header().Set("Content-Type", contentTypeProtobuf)
		body = otlp.AppendPartialSuccess(nil, int64(rejected), message)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// writeStatus writes an error as a google.rpc.Status in the request's
// encoding (JSON when the request's is unknown).
func writeStatus(w http.ResponseWriter, enc bodyEncoding, httpCode int, code codes.Code, msg string) {
	// Protobuf and JSON strings must be UTF-8, and a decoder's message may
	// quote the bad input.
	st := &spb.Status{Code: int32(code), Message: strings.ToValidUTF8(msg, "\uFFFD")}
	var body []byte
	var err error
	if enc == encodingProtobuf {
		w.Header().Set("Content-Type", contentTypeProtobuf)
		body, err = proto.Marshal(st)
	} else {
		w.Header().Set("Content-Type", contentTypeJSON)
		body, err = protojson.Marshal(st)
	}
	if err != nil {
		body = nil
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(httpCode)
	_, _ = w.Write(body)
}

// errTooLarge marks a body beyond max_message_size.
var errTooLarge = errors.New("body larger than limit")

// readLimited appends all of r to dst and fails with errTooLarge once more
// than limit bytes have been read. sizeHint is the Content-Length (or -1);
// it sizes the buffer up front unless the body is compressed.
func readLimited(dst []byte, r io.Reader, limit, sizeHint int64, compressed bool) ([]byte, error) {
	if !compressed && sizeHint > 0 && sizeHint <= limit {
		// One extra byte so the final Read can report EOF without a grow.
		dst = slices.Grow(dst, int(sizeHint)+1)
	}
	for {
		if len(dst) == cap(dst) {
			// Grow geometrically, but never beyond limit+1: one byte past the
			// limit is enough to know the body is too large.
			want := min(max(2*cap(dst), 4096), int(limit)+1)
			if want <= len(dst) {
				return dst, errTooLarge
			}
			dst = slices.Grow(dst, want-len(dst))
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if int64(len(dst)) > limit {
			return dst, errTooLarge
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// getZstd returns a pooled zstd decoder reading src. Its window is bounded
// by max_message_size, so a frame that declares a huge window is refused
// before memory is spent on it.
func (r *Receiver) getZstd(src io.Reader) (*zstd.Decoder, error) {
	if zr, ok := r.zstds.Get().(*zstd.Decoder); ok {
		if err := zr.Reset(src); err != nil {
			r.zstds.Put(zr)
			return nil, err
		}
		return zr, nil
	}
	limit := uint64(r.cfg.MaxMessageSize)
	return zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(limit), zstd.WithDecoderMaxWindow(max(limit, zstd.MinWindowSize)))
}

// getGzip returns a pooled gzip reader reading src (each holds a 32KiB
// window, worth reusing).
func (r *Receiver) getGzip(src io.Reader) (*gzip.Reader, error) {
	if zr, ok := r.gzips.Get().(*gzip.Reader); ok {
		if err := zr.Reset(src); err != nil {
			r.gzips.Put(zr)
			return nil, err
		}
		return zr, nil
	}
	return gzip.NewReader(src)
}

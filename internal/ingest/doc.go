// Package ingest receives OTLP traces over gRPC and HTTP and hands each valid
// request to the pipeline, with limits and backpressure.
//
// Neither protocol decodes into pdata on the hot path: the gRPC service is
// registered by hand with a codec that hands over the request's bytes, and
// both protocols validate them with otlp.Parse and pass the resulting
// *otlp.Request to the Consumer. Request buffers and otlp.Request values are
// pooled, which is why a Consumer must not keep the request after Consume
// returns. OTLP/JSON is decoded with pdata and re-encoded as protobuf first,
// after a scan of its bytes has refused deep nesting and sized the decoding
// (see jsondepth.go): pdata spends memory on every level and every object
// before it can refuse a body.
//
// Outcomes, per the OTLP specification:
//
//	                               gRPC                         HTTP
//	all spans accepted             OK, empty response           200, empty response
//	some or all spans invalid      OK, partial_success          200, partial_success
//	spans of services the token
//	  is not bound to              OK, partial_success          200, partial_success
//	no or unknown token            UNAUTHENTICATED              401 + WWW-Authenticate
//	token without the ingest scope PERMISSION_DENIED            403
//	malformed request              INVALID_ARGUMENT             400
//	over max_message_size          RESOURCE_EXHAUSTED (by grpc) 413
//	wrong content type / encoding  -                            415
//	wrong method                   -                            405
//	pipeline full (RetryAfter)     RESOURCE_EXHAUSTED+RetryInfo 429 + Retry-After
//	too many concurrent requests   RESOURCE_EXHAUSTED+RetryInfo 429 + Retry-After
//	memory short (Settings.Admit)  RESOURCE_EXHAUSTED+RetryInfo 429 + Retry-After
//	JSON slots or budget in use    -                            429 + Retry-After
//	JSON nested deeper than 64     -                            400
//	JSON over its decode budget    -                            413
//	other consumer error           UNAVAILABLE                  503 + Retry-After
//
// Tokens are checked (when ingest.require_token is on) before anything
// else: by the gRPC tap handle, before grpc-go reads the message, and first
// thing in the HTTP handler. The gRPC health service needs no token. With
// tls.client_ca_file, a client without a certificate signed by that CA
// fails the TLS handshake and is never counted as a request.
//
// HTTP error bodies are a google.rpc.Status in the request's encoding
// (protobuf or JSON; JSON when the content type is not one of the two).
//
// A gRPC message over max_message_size (before or after decompression) is
// refused by grpc-go itself (grpc.MaxRecvMsgSize) when the handler reads it,
// with RESOURCE_EXHAUSTED ("grpc: received message larger than max (N vs.
// M)" or "... after decompression larger than max"). It carries no
// RetryInfo, so OTLP clients treat it as permanent, as they do HTTP 413.
package ingest

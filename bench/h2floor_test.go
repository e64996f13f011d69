package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Window is the minimal server's stream and connection window, the
// default ingest.grpc_window.
const h2Window = 1 << 20

// serveUnaryH2 is the least an OTLP/gRPC receiver must do for a unary
// Export, written without grpc-go: read the HTTP/2 frames of one
// connection and, on the goroutine that reads them, answer each request
// as its last DATA frame arrives (response headers, an empty message and
// the grpc-status trailer, in one write). There is no hand-off between a
// reader, a stream worker and a writer. It is a measuring instrument, not
// a server: it handles one client's well-formed requests smaller than the
// window and stops at anything else.
func serveUnaryH2(c net.Conn, received *atomic.Int64) error {
	defer c.Close()
	br := bufio.NewReaderSize(c, 256<<10) // internal/ingest's grpcReadBuffer
	bw := bufio.NewWriterSize(c, 16<<10)
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(br, preface); err != nil {
		return err
	}
	if string(preface) != http2.ClientPreface {
		return errors.New("no HTTP/2 client preface")
	}
	fr := http2.NewFramer(bw, br)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.SetMaxReadFrameSize(1 << 20)
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2Window}); err != nil {
		return err
	}
	if err := fr.WriteWindowUpdate(0, h2Window-65535); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}

	var block []byte
	enc := hpack.NewEncoder(writerFunc(func(p []byte) (int, error) { block = append(block, p...); return len(p), nil }))
	encode := func(fields ...string) []byte {
		block = block[:0]
		for i := 0; i < len(fields); i += 2 {
			_ = enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
		}
		return block
	}
	emptyMessage := []byte{0, 0, 0, 0, 0} // not compressed, length 0
	streams := map[uint32][]byte{}
	var unacked uint32 // connection-level bytes not yet returned to the client
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				err = fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				err = fr.WritePing(true, f.Data)
			}
		case *http2.MetaHeadersFrame:
			streams[f.StreamID] = streams[f.StreamID][:0]
		case *http2.DataFrame:
			msg := append(streams[f.StreamID], f.Data()...)
			if len(msg) > h2Window {
				return fmt.Errorf("stream %d: a request over the %d-byte window", f.StreamID, h2Window)
			}
			streams[f.StreamID] = msg
			if unacked += f.Length; unacked > h2Window/4 {
				err, unacked = fr.WriteWindowUpdate(0, unacked), 0
			}
			if f.StreamEnded() {
				received.Add(int64(len(msg)))
				delete(streams, f.StreamID)
				err = errors.Join(err,
					fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, EndHeaders: true,
						BlockFragment: encode(":status", "200", "content-type", "application/grpc")}),
					fr.WriteData(f.StreamID, false, emptyMessage),
					fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, EndHeaders: true, EndStream: true,
						BlockFragment: encode("grpc-status", "0")}))
			}
		case *http2.GoAwayFrame:
			return nil
		}
		if err == nil && br.Buffered() == 0 {
			err = bw.Flush() // once per batch of frames read together
		}
		if err != nil {
			return err
		}
	}
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

// BenchmarkH2Floor measures BenchmarkE2E's load against serveUnaryH2: what
// it would cost a receiver to drop grpc-go's server transport for its own,
// which answers each Export on the connection's reader goroutine. Compare
// it with BenchmarkGRPCFloor, run alternately.
func BenchmarkH2Floor(b *testing.B) {
	lis := floorListener(b)
	var received atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	wg.Go(func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				if err := serveUnaryH2(c, &received); err != nil {
					errs <- err
				}
			})
		}
	})
	defer func() {
		lis.Close()
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Error(err)
		}
	}()

	measureFloor(b, lis.Addr().String(), &received)
}

package views

import (
	"bytes"
	"context"
	"io"

	"github.com/hxchat/hxchat/chat"
)

// RenderMessage renders m's log fragment; it is the hub's RenderFunc, called
// once per message for all subscribers.
func RenderMessage(m chat.Message) ([]byte, error) { return Render(Message(m)) }

// Render renders a component to bytes for the data of an SSE event. Line
// ends are LF only (CRLF and lone CR become LF), so the SSE writer, which
// splits on LF, gives every line its own "data:" field. Doing it here, where
// a fragment is made once, spares every subscriber's stream the scan.
func Render(c interface {
	Render(context.Context, io.Writer) error
}) ([]byte, error) {
	var b bytes.Buffer
	if err := c.Render(context.Background(), &b); err != nil {
		return nil, err
	}
	return lfOnly(b.Bytes()), nil
}

// lfOnly turns CRLF and lone CR into LF.
func lfOnly(b []byte) []byte {
	if bytes.IndexByte(b, '\r') < 0 {
		return b
	}
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\r"), []byte("\n"))
}

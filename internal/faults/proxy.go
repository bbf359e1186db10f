package faults

import (
	"io"
	"net"
	"sync"
)

// Proxy relays TCP connections from a loopback address to a target. Down
// closes the listener and every relayed connection, so clients see the
// dependency gone (connection refused); Up listens again on the same
// address. The target itself keeps running with its data.
type Proxy struct {
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup

	// The stall gate on the client-to-target direction (StallAfter).
	gate     sync.Cond // on mu
	stalling bool
	budget   int64 // bytes still forwarded while stalling
	blocked  int   // relays waiting at the gate
}

// NewProxy listens on a free loopback port and relays to target.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	p.gate.L = &p.mu
	p.serve(ln)
	return p, nil
}

// Addr returns the address clients should dial (host:port).
func (p *Proxy) Addr() string { return p.addr }

// StallAfter lets n more bytes through from clients to the target, in all,
// and then holds the rest: a client's upload hangs part-way, with the target
// holding what it got so far, until Resume (or Down).
func (p *Proxy) StallAfter(n int64) {
	p.mu.Lock()
	p.stalling, p.budget = true, n
	p.mu.Unlock()
}

// Blocked reports whether a client's data is being held at the stall.
func (p *Proxy) Blocked() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.blocked > 0
}

// Resume forwards everything again, starting with what was held.
func (p *Proxy) Resume() {
	p.mu.Lock()
	p.stalling = false
	p.gate.Broadcast()
	p.mu.Unlock()
}

// take waits until some of n bytes may be forwarded and returns how many.
func (p *Proxy) take(n int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.stalling && p.budget <= 0 {
		p.blocked++
		p.gate.Wait()
		p.blocked--
	}
	if !p.stalling {
		return n
	}
	k := int(min(int64(n), p.budget))
	p.budget -= int64(k)
	return k
}

// Down stops accepting and drops every open connection (and ends a stall).
func (p *Proxy) Down() {
	p.mu.Lock()
	p.stalling = false
	p.gate.Broadcast()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// Up listens again on the proxy's address. It is a no-op when already up.
func (p *Proxy) Up() error {
	p.mu.Lock()
	up := p.ln != nil
	p.mu.Unlock()
	if up {
		return nil
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return err
	}
	p.serve(ln)
	return nil
}

// Close takes the proxy down for good.
func (p *Proxy) Close() { p.Down() }

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.relay(c)
		}
	}()
}

func (p *Proxy) relay(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // went down meanwhile
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			c.Close()
			up.Close()
			p.mu.Lock()
			delete(p.conns, c)
			delete(p.conns, up)
			p.mu.Unlock()
		})
	}
	p.wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer p.wg.Done()
		_, _ = io.Copy(dst, src) // a reset or a closed conn is how a cut looks
		closeBoth()
	}
	go func() { // client to target, through the stall gate
		defer p.wg.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			for off := 0; off < n; {
				k := p.take(n - off)
				if _, werr := up.Write(buf[off : off+k]); werr != nil {
					closeBoth()
					return
				}
				off += k
			}
			if err != nil {
				closeBoth()
				return
			}
		}
	}()
	go pipe(c, up)
}

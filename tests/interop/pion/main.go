// Pion WebRTC v3 (Debian's golang-github-pion-webrtc.v3-dev) as a WHIP publisher or a WHEP viewer.
//
//	pion-peer publish -url WHIP_URL -token T -ivf clip.ivf   VP8 from an IVF file, looped, plus Opus silence
//	pion-peer view -url WHEP_URL -token T [-channel] [-timeout 20s]
//
// The viewer prints `VIEWER {json}` in the same shape as the Node viewers (lib.mjs Receipt).
// Loopback needs SetIncludeLoopbackCandidate and mDNS off; there is no ICE server at all.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v2"
	"github.com/pion/webrtc/v3"
	"github.com/pion/webrtc/v3/pkg/media"
	"github.com/pion/webrtc/v3/pkg/media/ivfreader"
)

func newAPI() *webrtc.API {
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		panic(err)
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(m))
}

// offer creates the offer, waits for every candidate (no trickle) and posts it.
func offer(pc *webrtc.PeerConnection, url, token string) error {
	o, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err = pc.SetLocalDescription(o); err != nil {
		return err
	}
	<-gathered
	req, _ := http.NewRequest("POST", url, strings.NewReader(pc.LocalDescription().SDP))
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 {
		return fmt.Errorf("%s: HTTP %d: %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)})
}

func publish(url, token, ivf string) error {
	data, err := os.ReadFile(ivf)
	if err != nil {
		return err
	}
	pc, err := newAPI().NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return err
	}
	video, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "pion")
	audio, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "pion")
	for _, t := range []webrtc.TrackLocal{video, audio} {
		s, err := pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return err
		}
		go func() { // read RTCP so the interceptors run
			buf := make([]byte, 1500)
			for {
				if _, _, err := s.Sender().Read(buf); err != nil {
					return
				}
			}
		}()
	}
	connected := make(chan struct{})
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	if err = offer(pc, url, token); err != nil {
		return err
	}
	select {
	case <-connected:
	case <-time.After(15 * time.Second):
		return errors.New("not connected after 15 s")
	}
	fmt.Println("PUBLISHING")
	go func() {
		silence := []byte{0xf8, 0xff, 0xfe}
		for range time.NewTicker(20 * time.Millisecond).C {
			_ = audio.WriteSample(media.Sample{Data: silence, Duration: 20 * time.Millisecond})
		}
	}()
	for { // loop the clip
		r, header, err := ivfreader.NewWith(bytes.NewReader(data))
		if err != nil {
			return err
		}
		frameDur := time.Second * time.Duration(header.TimebaseNumerator) / time.Duration(header.TimebaseDenominator)
		tick := time.NewTicker(frameDur)
		for {
			frame, _, err := r.ParseNextFrame()
			if err != nil {
				break
			}
			<-tick.C
			if err = video.WriteSample(media.Sample{Data: frame, Duration: frameDur}); err != nil {
				return err
			}
		}
		tick.Stop()
	}
}

type channelReport struct {
	Opened bool     `json:"opened"`
	Types  []string `json:"types"`
}

type viewReport struct {
	Stack        string         `json:"stack"`
	Codec        string         `json:"codec"`
	Frames       int            `json:"frames"`
	SpanMs       int64          `json:"span_ms"`
	FirstFrameMs *int64         `json:"first_frame_ms"`
	AudioPackets int            `json:"audio_packets"`
	AudioCodec   string         `json:"audio_codec"`
	Channel      *channelReport `json:"channel"`
	State        string         `json:"state,omitempty"`
	Error        string         `json:"error,omitempty"`
}

func keyframe(codec string, p []byte) bool {
	switch codec {
	case "VP8":
		if len(p) < 1 || p[0]&0x10 == 0 || p[0]&0x07 != 0 {
			return false
		}
		i := 1
		if p[0]&0x80 != 0 && len(p) > 1 {
			ext := p[1]
			i = 2
			if ext&0x80 != 0 && len(p) > i {
				if p[i]&0x80 != 0 {
					i += 2
				} else {
					i++
				}
			}
			if ext&0x40 != 0 {
				i++
			}
			if ext&0x30 != 0 {
				i++
			}
		}
		return i < len(p) && p[i]&0x01 == 0
	case "H264":
		if len(p) < 2 {
			return false
		}
		switch nal := p[0] & 0x1f; nal {
		case 5, 7:
			return true
		case 28:
			return p[1]&0x80 != 0 && p[1]&0x1f == 5
		case 24:
			for i := 1; i+2 < len(p); {
				size := int(p[i])<<8 | int(p[i+1])
				if t := p[i+2] & 0x1f; t == 5 || t == 7 {
					return true
				}
				i += 2 + size
			}
		}
	}
	return false
}

func view(url, token string, withChannel bool, timeout time.Duration) viewReport {
	rep := viewReport{Stack: "pion"}
	var mu sync.Mutex
	pc, err := newAPI().NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	defer pc.Close()
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err = pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			rep.Error = err.Error()
			return rep
		}
	}
	if withChannel {
		rep.Channel = &channelReport{Types: []string{}}
		dc, err := pc.CreateDataChannel("sellcast", nil)
		if err != nil {
			rep.Error = err.Error()
			return rep
		}
		dc.OnOpen(func() {
			mu.Lock()
			rep.Channel.Opened = true
			mu.Unlock()
			_ = dc.SendText(`{"type":"hello"}`)
		})
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			var f struct{ Type string }
			if json.Unmarshal(m.Data, &f) != nil {
				f.Type = "unparsable"
			}
			mu.Lock()
			rep.Channel.Types = append(rep.Channel.Types, f.Type)
			mu.Unlock()
		})
	}
	var posted time.Time
	var firstTs, lastTs uint32
	sawKey := false
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		codec := strings.ToUpper(strings.TrimPrefix(strings.TrimPrefix(t.Codec().MimeType, "video/"), "audio/"))
		for {
			pkt, _, err := t.ReadRTP()
			if err != nil {
				return
			}
			mu.Lock()
			if t.Kind() == webrtc.RTPCodecTypeAudio {
				rep.AudioCodec = codec
				rep.AudioPackets++
			} else {
				rep.Codec = codec
				if !sawKey && keyframe(codec, pkt.Payload) {
					sawKey = true
				}
				if sawKey && pkt.Marker {
					if rep.Frames == 0 {
						ms := time.Since(posted).Milliseconds()
						rep.FirstFrameMs = &ms
						firstTs = pkt.Timestamp
					}
					rep.Frames++
					lastTs = pkt.Timestamp
					rep.SpanMs = int64(lastTs-firstTs) / 90
				}
			}
			mu.Unlock()
		}
	})
	posted = time.Now()
	if err = offer(pc, url, token); err != nil {
		rep.Error = err.Error()
		return rep
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		mu.Lock()
		done := rep.Frames >= 20 && rep.SpanMs >= 2000 && rep.AudioPackets > 0
		if rep.Channel != nil {
			has := map[string]bool{}
			for _, t := range rep.Channel.Types {
				has[t] = true
			}
			done = done && has["welcome"] && has["snapshot"]
		}
		mu.Unlock()
		if done {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	rep.State = pc.ConnectionState().String()
	out := rep
	if rep.Channel != nil {
		c := *rep.Channel
		out.Channel = &c
	}
	return out
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: pion-peer publish|view -url URL -token T ...")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	url := fs.String("url", "", "WHIP or WHEP URL")
	token := fs.String("token", "", "bearer token")
	ivf := fs.String("ivf", "", "VP8 IVF clip to publish")
	channel := fs.Bool("channel", false, "open the sellcast data channel and say hello")
	timeout := fs.Duration("timeout", 20*time.Second, "how long a viewer waits for 2 s of media")
	_ = fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "publish":
		if err := publish(*url, *token, *ivf); err != nil {
			fmt.Fprintln(os.Stderr, "publish:", err)
			os.Exit(1)
		}
	case "view":
		rep := view(*url, *token, *channel, *timeout)
		b, _ := json.Marshal(rep)
		fmt.Printf("VIEWER %s\n", b)
	}
}

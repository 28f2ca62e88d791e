//! One TCP connection's task, on its shard's runtime: frames read from the client go to the
//! driver's TCP inbox, datagrams the driver queued for it are written with their length
//! prefix. Reading and writing run side by side; when either ends, both do, and the driver
//! hears `Closed`.
//!
//! The reader spends a `FrameBudget` per frame: a client over its rate waits (it is not read),
//! so it cannot fill the shard's inbox that other connections share.
//!
//! The driver only ever `try_send`s into the connection's bounded queue, so a client that
//! reads slowly fills its own queue and loses its own packets; one that stops reading for
//! `write_stall` is closed. The write buffer is allocated once and reused: a packet costs a
//! copy into it, and no allocation.

use std::sync::Arc;
use std::time::Instant;

use str0m::net::DatagramSend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::budget::FrameBudget;
use super::framing::{encode_frame, FrameDecoder};
use super::stats::{Closed, TcpStats};
use super::{ConnId, TcpInput, TcpLimits};
use crate::http::connections::ConnectionSlot;

/// Bytes gathered into one write when several datagrams are waiting.
const WRITE_BATCH: usize = 32 * 1024;

/// Everything a connection task owns.
pub(crate) struct Connection {
    pub conn: ConnId,
    pub stream: TcpStream,
    pub decoder: FrameDecoder,
    /// What the driver queued for this connection; closed when the driver lets it go.
    pub out: mpsc::Receiver<DatagramSend>,
    pub inbox: mpsc::Sender<TcpInput>,
    pub limits: TcpLimits,
    pub stats: Arc<TcpStats>,
    pub slot: ConnectionSlot,
}

impl Connection {
    /// Run until the client, the driver or a limit ends it.
    pub(crate) async fn run(self) {
        let Connection { conn, stream, decoder, out, inbox, limits, stats, slot } = self;
        let (reader, writer) = stream.into_split();
        let why = tokio::select! {
            why = read_frames(conn, reader, decoder, &inbox, limits) => why,
            why = write_frames(writer, out, limits) => why,
        };
        stats.closed(why);
        // The driver forgets the connection; if it is gone (shard stopping), nobody needs to.
        let _ = inbox.try_send(TcpInput::Closed { conn });
        drop(slot);
    }
}

async fn read_frames(
    conn: ConnId,
    mut reader: OwnedReadHalf,
    mut decoder: FrameDecoder,
    inbox: &mpsc::Sender<TcpInput>,
    limits: TcpLimits,
) -> Closed {
    let per_second = limits.frames_per_second;
    let mut budget = FrameBudget::new(per_second, per_second / 5, Instant::now());
    loop {
        // What the listener read past the first frame is in the decoder already.
        loop {
            let data = match decoder.next_frame() {
                Ok(Some(frame)) => frame.to_vec(),
                Ok(None) => break,
                Err(_) => return Closed::BadFrame,
            };
            while let Err(wait) = budget.take(Instant::now()) {
                tokio::time::sleep(wait).await;
            }
            // Waits when the shard is busy: the client is pushed back through TCP.
            if inbox.send(TcpInput::Frame { conn, data }).await.is_err() {
                return Closed::PeerGone;
            }
        }
        match tokio::time::timeout(limits.idle, reader.read(decoder.space())).await {
            Err(_) => return Closed::Idle,
            Ok(Ok(0)) | Ok(Err(_)) => return Closed::ClientGone,
            Ok(Ok(n)) => decoder.filled(n),
        }
    }
}

async fn write_frames(mut writer: OwnedWriteHalf, mut out: mpsc::Receiver<DatagramSend>, limits: TcpLimits) -> Closed {
    let mut buf = Vec::with_capacity(WRITE_BATCH + super::framing::MAX_FRAME + 2);
    loop {
        let Some(first) = out.recv().await else {
            return Closed::PeerGone;
        };
        // A datagram two bytes cannot frame is not one str0m makes; skip it if it ever were.
        let _ = encode_frame(&mut buf, &first);
        while buf.len() < WRITE_BATCH {
            let Ok(next) = out.try_recv() else {
                break;
            };
            let _ = encode_frame(&mut buf, &next);
        }
        match tokio::time::timeout(limits.write_stall, writer.write_all(&buf)).await {
            Ok(Ok(())) => buf.clear(),
            Ok(Err(_)) => return Closed::ClientGone,
            Err(_) => return Closed::WriteStalled,
        }
    }
}

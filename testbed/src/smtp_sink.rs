//! A small SMTP server that keeps what it receives: the mail server of a
//! local sandbox and of the notification tests.
//!
//! It speaks plain SMTP (RFC 5321) over TCP: no TLS and no authentication,
//! neither of which it advertises, so a client configured with `smtp://`
//! and no credentials talks to it as to any relay. Recipients can be made
//! to fail with a permanent or a transient reply, to see how a sender
//! handles a refused mailbox.
//!
//! It runs on its own threads, not on an async runtime, so it can be
//! started from synchronous code and from any runtime alike, and a test
//! that blocks its runtime cannot stall it.

use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// One mail as the sink received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`), empty for the null sender `<>`.
    pub from: String,
    /// The envelope recipients the sink accepted, in order.
    pub to: Vec<String>,
    /// The message (headers and body) with dot-stuffing removed and line
    /// ends as the client sent them.
    pub data: String,
    pub received_at: jiff::Timestamp,
}

impl ReceivedMail {
    /// The first header named `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let mut found: Option<String> = None;
        for line in self.header_lines() {
            if let Some(value) = found.as_mut() {
                if line.starts_with([' ', '\t']) {
                    value.push(' ');
                    value.push_str(line.trim());
                    continue;
                }
                break;
            }
            if let Some((field, value)) = line.split_once(':')
                && field.eq_ignore_ascii_case(name)
            {
                found = Some(value.trim().to_owned());
            }
        }
        found
    }

    /// The body: everything after the blank line that ends the headers.
    pub fn body(&self) -> &str {
        ["\r\n\r\n", "\n\n"]
            .iter()
            .filter_map(|end| self.data.find(end).map(|at| (at, end.len())))
            .min()
            .map_or("", |(at, len)| &self.data[at + len..])
    }

    fn header_lines(&self) -> impl Iterator<Item = &str> {
        self.data
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .take_while(|l| !l.is_empty())
    }
}

/// How the sink answers a `RCPT TO` whose address matches a pattern.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Reject,
    Defer,
}

#[derive(Debug, Clone)]
struct Rule {
    pattern: String,
    refusal: Refusal,
}

#[derive(Default)]
struct State {
    mails: Vec<ReceivedMail>,
    rules: Vec<Rule>,
    /// Clones of the open connections, shut down on stop so that their
    /// threads, blocked in a read, wake up and end.
    connections: Vec<(u64, TcpStream)>,
}

struct Inner {
    state: Mutex<State>,
    stopping: AtomicBool,
    next_connection: AtomicU64,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // A connection thread that panicked leaves the mails it stored
        // intact; keep serving them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running sink. Stops when dropped or on [`SmtpSink::shutdown`].
pub struct SmtpSink {
    addr: SocketAddr,
    inner: Arc<Inner>,
    acceptor: Option<JoinHandle<()>>,
}

/// How often the accept loop looks at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(20);
/// A client silent this long is disconnected, as real servers do.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest command line; RFC 5321 asks for at least 512 octets.
const MAX_COMMAND: u64 = 4096;
/// The largest message, advertised with SIZE.
const MAX_MESSAGE: usize = 25 * 1024 * 1024;
const MAX_RECIPIENTS: usize = 100;
const NAME: &str = "smmctl-smtp-sink";

impl SmtpSink {
    /// Listens on `addr` (port 0 picks a free port; see [`SmtpSink::addr`]).
    pub fn start(addr: SocketAddr) -> io::Result<SmtpSink> {
        let listener = TcpListener::bind(addr)?;
        // Non-blocking, so the accept loop can notice a stop without a
        // connection arriving to wake it.
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            stopping: AtomicBool::new(false),
            next_connection: AtomicU64::new(0),
        });
        let acceptor = std::thread::Builder::new()
            .name(format!("smtp-sink-{}", addr.port()))
            .spawn({
                let inner = inner.clone();
                move || accept_loop(listener, inner)
            })?;
        Ok(SmtpSink {
            addr,
            inner,
            acceptor: Some(acceptor),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An `smtp://` URL for this sink, for a sender's settings.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Every mail received so far, oldest first.
    pub fn mails(&self) -> Vec<ReceivedMail> {
        self.inner.state().mails.clone()
    }

    /// Forgets the mails received so far.
    pub fn clear(&self) {
        self.inner.state().mails.clear();
    }

    /// Refuses recipients matching `pattern` for good, with
    /// `550 5.1.1 mailbox unknown`. The pattern is matched against the
    /// whole address, case-insensitively; `*` stands for any run of
    /// characters (`reject-*@*`, `*@invalid.example`).
    pub fn reject(&self, pattern: impl Into<String>) {
        self.rule(pattern.into(), Refusal::Reject);
    }

    /// Refuses recipients matching `pattern` for now, with
    /// `450 4.2.1 mailbox busy`, which a sender should retry.
    pub fn defer(&self, pattern: impl Into<String>) {
        self.rule(pattern.into(), Refusal::Defer);
    }

    fn rule(&self, pattern: String, refusal: Refusal) {
        self.inner.state().rules.push(Rule {
            pattern: pattern.to_ascii_lowercase(),
            refusal,
        });
    }

    /// Stops listening and closes every connection. Idempotent.
    pub fn shutdown(&mut self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let connections = std::mem::take(&mut self.inner.state().connections);
        for (_, stream) in connections {
            let _ = stream.shutdown(Shutdown::Both);
        }
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn accept_loop(listener: TcpListener, inner: Arc<Inner>) {
    while !inner.stopping.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, peer)) => {
                let id = inner.next_connection.fetch_add(1, Ordering::Relaxed);
                let registered = stream
                    .set_nonblocking(false)
                    .and_then(|()| stream.set_read_timeout(Some(IDLE_TIMEOUT)))
                    .and_then(|()| stream.try_clone());
                let Ok(clone) = registered else {
                    continue;
                };
                inner.state().connections.push((id, clone));
                let spawned = std::thread::Builder::new()
                    .name(format!("smtp-sink-conn-{id}"))
                    .spawn({
                        let inner = inner.clone();
                        move || {
                            if let Err(e) = serve(stream, &inner) {
                                tracing::debug!(%peer, error = %e, "SMTP sink connection ended");
                            }
                            inner.state().connections.retain(|(c, _)| *c != id);
                        }
                    });
                if spawned.is_err() {
                    inner.state().connections.retain(|(c, _)| *c != id);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            Err(e) => {
                tracing::warn!(error = %e, "SMTP sink cannot accept a connection");
                std::thread::sleep(ACCEPT_POLL);
            }
        }
    }
}

/// One SMTP transaction in progress.
#[derive(Default)]
struct Transaction {
    from: Option<String>,
    to: Vec<String>,
}

fn serve(stream: TcpStream, inner: &Inner) -> io::Result<()> {
    let writer = stream.try_clone()?;
    let mut session = Session {
        reader: BufReader::new(stream),
        writer,
        inner,
        greeted: false,
        transaction: Transaction::default(),
    };
    session.reply(&format!("220 {NAME} ESMTP ready"))?;
    let mut line = Vec::new();
    loop {
        if inner.stopping.load(Ordering::SeqCst) {
            return session.reply("421 4.3.2 shutting down");
        }
        let Some(text) = session.read_command(&mut line)? else {
            return Ok(());
        };
        let (verb, argument) = match text.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim()),
            None => (text.to_ascii_uppercase(), ""),
        };
        if let Flow::End = session.command(&verb, argument)? {
            return Ok(());
        }
    }
}

/// One client's connection: where its replies go, and what it has said.
struct Session<'a> {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    inner: &'a Inner,
    greeted: bool,
    transaction: Transaction,
}

/// Whether the connection goes on after a command.
enum Flow {
    Continue,
    End,
}

impl Session<'_> {
    fn reply(&mut self, text: &str) -> io::Result<()> {
        self.writer.write_all(text.as_bytes())?;
        self.writer.write_all(b"\r\n")?;
        self.writer.flush()
    }

    /// The next command line without its line end; `None` once the
    /// connection is to end.
    fn read_command(&mut self, line: &mut Vec<u8>) -> io::Result<Option<String>> {
        line.clear();
        let read = (&mut self.reader)
            .take(MAX_COMMAND)
            .read_until(b'\n', line)?;
        if read == 0 {
            return Ok(None);
        }
        if !line.ends_with(b"\n") {
            if read as u64 == MAX_COMMAND {
                self.reply("500 5.5.2 line too long")?;
                // The rest of the line is unknown; the connection cannot be
                // kept in step, so end it as real servers do.
                return Ok(None);
            }
            // End of stream in the middle of a line.
            return Ok(None);
        }
        let text = String::from_utf8_lossy(line);
        Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()))
    }

    fn command(&mut self, verb: &str, argument: &str) -> io::Result<Flow> {
        match verb {
            "EHLO" | "HELO" if argument.is_empty() => {
                self.reply("501 5.5.4 a domain or address is required")?
            }
            "EHLO" => {
                self.greeted = true;
                self.transaction = Transaction::default();
                self.reply(&format!("250-{NAME} greets {argument}"))?;
                self.reply("250-8BITMIME")?;
                self.reply("250-SMTPUTF8")?;
                self.reply(&format!("250 SIZE {MAX_MESSAGE}"))?;
            }
            "HELO" => {
                self.greeted = true;
                self.transaction = Transaction::default();
                self.reply(&format!("250 {NAME}"))?;
            }
            "MAIL" => self.mail(argument)?,
            "RCPT" => self.rcpt(argument)?,
            "DATA" => return self.data(argument),
            "RSET" => {
                self.transaction = Transaction::default();
                self.reply("250 2.0.0 Ok")?;
            }
            "NOOP" => self.reply("250 2.0.0 Ok")?,
            "QUIT" => {
                self.reply(&format!("221 2.0.0 {NAME} closing"))?;
                return Ok(Flow::End);
            }
            "VRFY" => self.reply("252 2.5.2 cannot verify, but will try to deliver")?,
            // Known to SMTP but not offered here (nor in the EHLO reply).
            "STARTTLS" | "AUTH" | "EXPN" | "BDAT" | "TURN" | "ETRN" => {
                self.reply("502 5.5.1 command not implemented")?
            }
            _ => self.reply("500 5.5.2 command not recognized")?,
        }
        Ok(Flow::Continue)
    }

    fn mail(&mut self, argument: &str) -> io::Result<()> {
        if !self.greeted {
            return self.reply("503 5.5.1 send EHLO or HELO first");
        }
        if self.transaction.from.is_some() {
            return self.reply("503 5.5.1 a mail transaction is already open");
        }
        match path_after(argument, "FROM:") {
            Some(from) => {
                self.transaction.from = Some(from);
                self.reply("250 2.1.0 Ok")
            }
            None => self.reply("501 5.5.4 syntax: MAIL FROM:<address>"),
        }
    }

    fn rcpt(&mut self, argument: &str) -> io::Result<()> {
        if self.transaction.from.is_none() {
            return self.reply("503 5.5.1 send MAIL first");
        }
        match path_after(argument, "TO:") {
            Some(to) if to.is_empty() => self.reply("501 5.1.3 an empty recipient is not allowed"),
            Some(to) => {
                let refusal = refusal_for(&self.inner.state().rules, &to);
                if let Some(refusal) = refusal {
                    self.reply(&refusal)
                } else if self.transaction.to.len() >= MAX_RECIPIENTS {
                    self.reply("452 4.5.3 too many recipients")
                } else {
                    self.transaction.to.push(to);
                    self.reply("250 2.1.5 Ok")
                }
            }
            None => self.reply("501 5.5.4 syntax: RCPT TO:<address>"),
        }
    }

    fn data(&mut self, argument: &str) -> io::Result<Flow> {
        if !argument.is_empty() {
            self.reply("501 5.5.4 DATA takes no argument")?;
            return Ok(Flow::Continue);
        }
        let Some(from) = self.transaction.from.take() else {
            self.reply("503 5.5.1 send MAIL first")?;
            return Ok(Flow::Continue);
        };
        if self.transaction.to.is_empty() {
            self.transaction.from = Some(from);
            self.reply("554 5.5.1 no valid recipients")?;
            return Ok(Flow::Continue);
        }
        self.reply("354 End data with <CR><LF>.<CR><LF>")?;
        let to = std::mem::take(&mut self.transaction.to);
        match read_data(&mut self.reader)? {
            Data::Complete(data) => {
                let mut state = self.inner.state();
                state.mails.push(ReceivedMail {
                    from,
                    to,
                    data,
                    received_at: jiff::Timestamp::now(),
                });
                let queued = state.mails.len();
                drop(state);
                self.reply(&format!("250 2.0.0 Ok: queued as {queued}"))?;
            }
            Data::TooLarge => self.reply("552 5.3.4 message too big")?,
            Data::Cut => return Ok(Flow::End),
        }
        Ok(Flow::Continue)
    }
}

/// The address in `FROM:<a@b> PARAMS` or `TO:<a@b>`, without the brackets;
/// empty for the null path `<>`.
fn path_after(argument: &str, keyword: &str) -> Option<String> {
    let head = argument.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = argument[keyword.len()..].trim_start();
    let inside = rest.strip_prefix('<')?;
    let end = inside.find('>')?;
    Some(inside[..end].to_owned())
}

fn refusal_for(rules: &[Rule], address: &str) -> Option<String> {
    let lower = address.to_ascii_lowercase();
    let rule = rules.iter().find(|rule| glob(&rule.pattern, &lower))?;
    Some(match rule.refusal {
        Refusal::Reject => {
            format!("550 5.1.1 <{address}>: Recipient address rejected: mailbox unknown")
        }
        Refusal::Defer => format!(
            "450 4.2.1 <{address}>: Recipient address deferred: mailbox busy, try again later"
        ),
    })
}

/// `*`-only glob over the whole text.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: the prefix had to be the whole text.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

enum Data {
    Complete(String),
    TooLarge,
    /// The client went away before the terminating dot.
    Cut,
}

/// Reads the message up to the line holding a single dot, removing the
/// dot a client adds in front of lines that begin with one (RFC 5321
/// 4.5.2).
fn read_data(reader: &mut BufReader<TcpStream>) -> io::Result<Data> {
    let mut data = Vec::new();
    let mut too_large = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        // Bounded per line, so a client that never sends a line end cannot
        // grow the buffer without limit.
        let read = (&mut *reader)
            .take(MAX_MESSAGE as u64 + 3)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(Data::Cut);
        }
        let content = line
            .strip_suffix(b"\r\n")
            .or_else(|| line.strip_suffix(b"\n"))
            .unwrap_or(&line);
        if content == b"." {
            break;
        }
        if too_large {
            continue;
        }
        let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
        if data.len() + unstuffed.len() > MAX_MESSAGE {
            // Keep reading to the terminating dot so the session stays in
            // step and the client gets its 552.
            too_large = true;
            data.clear();
            continue;
        }
        data.extend_from_slice(unstuffed);
    }
    if too_large {
        return Ok(Data::TooLarge);
    }
    Ok(Data::Complete(String::from_utf8_lossy(&data).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lettre::message::Mailbox;
    use lettre::transport::smtp::client::Tls;
    use lettre::{Message, SmtpTransport, Transport as _};

    fn sink() -> SmtpSink {
        SmtpSink::start("127.0.0.1:0".parse().unwrap()).unwrap()
    }

    fn transport(sink: &SmtpSink) -> SmtpTransport {
        SmtpTransport::builder_dangerous(sink.addr().ip().to_string())
            .port(sink.addr().port())
            .tls(Tls::None)
            .timeout(Some(Duration::from_secs(5)))
            .build()
    }

    fn mail(to: &str, body: &str) -> Message {
        Message::builder()
            .from("Panel <noreply@panel.example>".parse::<Mailbox>().unwrap())
            .to(to.parse::<Mailbox>().unwrap())
            .subject("Your order")
            .message_id(Some("<n-1@smmctl>".into()))
            .body(body.to_owned())
            .unwrap()
    }

    /// Reads one reply, every line of it.
    fn read_reply(reader: &mut BufReader<TcpStream>, replies: &mut Vec<String>) {
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                return;
            }
            let line = line.trim_end().to_owned();
            let last = line.as_bytes().get(3) != Some(&b'-');
            replies.push(line);
            if last {
                return;
            }
        }
    }

    /// A raw session: sends each line, returns every reply line.
    fn talk(sink: &SmtpSink, lines: &[&str]) -> Vec<String> {
        let stream = TcpStream::connect(sink.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let mut replies = Vec::new();
        read_reply(&mut reader, &mut replies);
        let mut in_data = false;
        for line in lines {
            writer.write_all(format!("{line}\r\n").as_bytes()).unwrap();
            // Inside DATA the server answers only the terminating dot.
            if in_data {
                if *line == "." {
                    in_data = false;
                    read_reply(&mut reader, &mut replies);
                }
                continue;
            }
            read_reply(&mut reader, &mut replies);
            in_data = *line == "DATA" && replies.last().is_some_and(|r| r.starts_with("354"));
        }
        replies
    }

    #[test]
    fn lettre_delivers_a_mail_with_its_headers_and_body() {
        let sink = sink();
        let response = transport(&sink)
            .send(&mail("buyer@example.com", "Your order 42 is complete."))
            .unwrap();
        assert!(response.is_positive());
        let mails = sink.mails();
        assert_eq!(mails.len(), 1);
        assert_eq!(mails[0].from, "noreply@panel.example");
        assert_eq!(mails[0].to, vec!["buyer@example.com".to_owned()]);
        assert_eq!(mails[0].header("subject").as_deref(), Some("Your order"));
        assert_eq!(
            mails[0].header("Message-ID").as_deref(),
            Some("<n-1@smmctl>")
        );
        assert_eq!(mails[0].body().trim_end(), "Your order 42 is complete.");
    }

    #[test]
    fn dot_stuffed_lines_come_back_as_written() {
        let sink = sink();
        let body = ".hidden line\r\n..two dots\r\n.\r\nend";
        transport(&sink)
            .send(&mail("buyer@example.com", body))
            .unwrap();
        let got = sink.mails().remove(0);
        assert!(
            got.body()
                .starts_with(".hidden line\r\n..two dots\r\n.\r\nend"),
            "{:?}",
            got.body()
        );
    }

    #[test]
    fn a_rejected_recipient_gets_a_permanent_550_and_nothing_is_stored() {
        let sink = sink();
        sink.reject("reject-*@*");
        let error = transport(&sink)
            .send(&mail("reject-me@example.com", "hello"))
            .unwrap_err();
        assert!(error.is_permanent(), "{error}");
        assert_eq!(error.status().map(u16::from), Some(550));
        assert!(error.to_string().contains("mailbox unknown"), "{error}");
        assert!(sink.mails().is_empty());
        transport(&sink)
            .send(&mail("keep-me@example.com", "hello"))
            .unwrap();
        assert_eq!(sink.mails().len(), 1);
    }

    #[test]
    fn a_deferred_recipient_gets_a_transient_450() {
        let sink = sink();
        sink.defer("*@busy.example");
        let error = transport(&sink)
            .send(&mail("x@BUSY.example", "hello"))
            .unwrap_err();
        assert!(error.is_transient(), "{error}");
        assert_eq!(error.status().map(u16::from), Some(450));
    }

    #[test]
    fn the_session_follows_the_protocol() {
        let sink = sink();
        let replies = talk(
            &sink,
            &[
                "MAIL FROM:<a@x>",
                "EHLO client.example",
                "RCPT TO:<b@x>",
                "MAIL FROM:<a@x> SIZE=10",
                "DATA",
                "RCPT TO:<b@x>",
                "RSET",
                "DATA",
                "MAIL FROM:<>",
                "RCPT to: <c@x>",
                "DATA",
                "Subject: raw",
                "",
                "..starts with a dot",
                ".",
                "NOOP",
                "STARTTLS",
                "AUTH PLAIN AGFiAGM=",
                "WHAT",
                "QUIT",
            ],
        );
        let codes: Vec<&str> = replies.iter().map(|r| &r[..3]).collect();
        assert_eq!(
            codes,
            [
                "220", "503", "250", "250", "250", "250", "503", "250", "554", "250", "250", "503",
                "250", "250", "354", "250", "250", "502", "502", "500", "221"
            ],
            "{replies:#?}"
        );
        assert!(
            !replies
                .iter()
                .any(|r| r.contains("STARTTLS") || r.contains("AUTH")),
            "{replies:?}"
        );
        let mails = sink.mails();
        assert_eq!(mails.len(), 1);
        assert_eq!(mails[0].from, "");
        assert_eq!(mails[0].to, vec!["c@x".to_owned()]);
        assert_eq!(mails[0].data, "Subject: raw\r\n\r\n.starts with a dot\r\n");
    }

    #[test]
    fn shutdown_closes_the_port_and_open_sessions() {
        let mut sink = sink();
        let addr = sink.addr();
        let open = TcpStream::connect(addr).unwrap();
        open.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut reader = BufReader::new(open);
        let mut greeting = String::new();
        reader.read_line(&mut greeting).unwrap();
        assert!(greeting.starts_with("220"));
        sink.shutdown();
        let mut rest = String::new();
        // The session ends: EOF or a reset, never a hang.
        let _ = reader.read_line(&mut rest);
        assert!(TcpStream::connect(addr).is_err());
        sink.shutdown();
    }

    #[test]
    fn globs_match_whole_addresses() {
        assert!(glob("reject-*@*", "reject-1@example.com"));
        assert!(!glob("reject-*@*", "ok@example.com"));
        assert!(glob("*@invalid.example", "a@invalid.example"));
        assert!(!glob("*@invalid.example", "a@invalid.example.org"));
        assert!(glob("exact@x", "exact@x"));
        assert!(!glob("exact@x", "exact@xy"));
        assert!(glob("a*b*c", "abc"));
        assert!(!glob("ab*ba", "aba"));
    }
}

import NIOCore
import NIOHTTP1
import ZPubCore

/// Answers plain HTTP requests and turns `/events` and `/status/events` into event streams.
/// (WebSocket upgrades are taken by NIO's upgrader before they get here; a request to /ws that
/// arrives here was refused, and is answered with the reason.) Runs on the connection's event loop.
final class HTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    static let name = "zpub-http"
    let shared: GatewayShared
    private var head: HTTPRequestHead?
    /// The request's body: kept for POST /publish (up to `max_frame` bytes), counted otherwise.
    private var body: [UInt8] = []
    private var bodyBytes = 0
    /// Set once the connection streams events; it then takes no more requests.
    private var stream: EventStream?
    /// The connection's place among those that are not clients, given back when it starts
    /// streaming (or is upgraded to a WebSocket, which removes this handler) or closes.
    private let slot: PlainConnections.Slot
    /// Runs while the connection owes the gateway a request: until the first one is whole,
    /// and between a response and the next request.
    private var deadline = RequestDeadline()
    /// A response has been sent on this connection: it is a kept-alive one.
    private var answeredBefore = false
    /// A whole request that waits for the connection to take a reply (`channelRead`).
    private var unanswered: (HTTPRequestHead, [UInt8])?
    /// A request could not be read: its 400 is on its way and the connection closing.
    private var closingForError = false
    /// Requests served in this turn of the event loop (`TurnBudget`).
    private var turn = TurnBudget()
    /// Removed from the pipeline (an upgrade): a turn's end has nothing more to serve.
    private var removed = false
    /// The connection came in over loopback: its requests' Host is checked whoever sends them
    /// (`AccessPolicy.checkHost`).
    private let viaLoopback: Bool

    private enum EventStream {
        /// The outbox, the keep-alive, and the close at the JWT's expiry (if any).
        /// An event stream, with the prefixes it claimed (`UpstreamClaims`).
        case messages(ClientOutbox, RepeatedTask, Scheduled<Void>?, user: String?, prefixes: Set<[UInt8]>)
        /// A status page's feed: its id in the shared `StatusFeed`.
        case status(UInt64)
    }

    init(shared: GatewayShared, slot: PlainConnections.Slot, viaLoopback: Bool) {
        self.shared = shared
        self.slot = slot
        self.viaLoopback = viaLoopback
    }

    func handlerAdded(context: ChannelHandlerContext) {
        restartDeadline(context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        removed = true
        deadline.stop()
        slot.release()
    }

    private func restartDeadline(_ context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadline.restart(on: context.eventLoop) {
            let (handler, context) = loopBound.value
            handler.deadlinePassed(context)
        }
    }

    /// No whole request came in time. A client in the middle of one, or that never sent one,
    /// is told why (a person trying the port by hand sees it); an idle kept-alive connection is
    /// closed without a word, since a 408 could cross a request the client is just sending and
    /// be taken for its answer.
    private func deadlinePassed(_ context: ChannelHandlerContext) {
        guard stream == nil else { return }
        guard head != nil || !answeredBefore else {
            context.close(promise: nil)
            return
        }
        answerRawAndClose(
            context,
            RawHTTPResponse.error(
                status: "408 Request Timeout", code: "request_timeout",
                "no whole request within \(RequestDeadline.seconds) s; send the request as soon as the connection is open"
            ))
    }

    /// Writes `response` below NIO's HTTP encoder (which has no request to answer, or leaves a
    /// CONNECT's answer bodiless) and closes the connection once it is written (`Goodbye`).
    private func answerRawAndClose(_ context: ChannelHandlerContext, _ response: [UInt8]) {
        guard let raw = context.pipeline.syncOperations.rawWriterContext() else {
            return context.close(promise: nil)
        }
        Goodbye.close(context.channel, once: raw.writeAndFlush(NIOAny(ByteBuffer(bytes: response))))
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard stream == nil, !closingForError else { return }
        switch unwrapInboundIn(data) {
        case .head(let received):
            let head = Self.originForm(received)
            self.head = head
            body = []
            bodyBytes = 0
            if head.method == .CONNECT {
                // llhttp reads what follows a CONNECT as a tunnel's bytes: no request after it
                // could be read. It got a 400 without its body and the connection stayed open
                // 10 s. Written below NIO's encoder, which leaves a CONNECT's answer bodiless.
                closingForError = true
                deadline.stop()
                return answerRawAndClose(
                    context,
                    RawHTTPResponse.error(
                        status: "405 Method Not Allowed", code: "method_not_allowed",
                        "CONNECT is not supported: the gateway is no proxy",
                        extraHeaders: "Allow: GET, HEAD, POST, OPTIONS\r\n"))
            }
            if let unmet = Self.unmetExpectation(head) {
                // RFC 9110 10.1.1: an expectation the server cannot meet gets a 417.
                count(.badRequest)
                return refuseAndClose(
                    context, .expectationFailed, "expectation_failed",
                    "Expect: \(unmet) cannot be met: this server meets only Expect: 100-continue", head)
            }
            if Self.expectsContinue(head) { answerExpectation(context, head) }
        case .body(var part):
            bodyBytes += part.readableBytes
            let limit = shared.settings.maxFrame
            if bodyBytes > limit, let head {
                count(.payloadTooLarge)
                refuseAndClose(
                    context, .payloadTooLarge, "too_large",
                    "a request body may have at most max_frame (\(limit)) bytes; split a batch into several requests",
                    head)
            } else if head?.method == .POST {
                body += part.readBytes(length: part.readableBytes) ?? []
            }
        case .end:
            guard let head else { return }
            self.head = nil
            let requestBody = body
            body = []
            // Answered only while the reply can leave. A client that pipelines requests and
            // does not read the replies had every request of a read answered at once, its
            // replies queued whatever the water mark: 2 MB of requests on each of 16 such
            // connections grew zpubd by 48 MB and stalled the gateway. Now the request waits
            // (and HTTPServerPipelineHandler holds those after it, reading no more), and the
            // deadline keeps running: a client that never reads is closed. Past its turn's
            // budget it waits too, for the turn's end, behind every other connection.
            unanswered = (head, requestBody)
            serveUnanswered(context)
        }
    }

    /// Answers the request that waits, if the connection can take the reply and this turn of
    /// the event loop has room (`TurnBudget`); otherwise writability, or the turn's end, calls
    /// again. (Answering may deliver the next pipelined request at once, which comes here.)
    private func serveUnanswered(_ context: ChannelHandlerContext) {
        guard !removed, stream == nil, !closingForError, context.channel.isWritable, unanswered != nil else { return }
        guard turn.take(shared.turns) else {
            guard turn.startWaiting() else { return }
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            shared.turns.afterThisTurn(on: context.eventLoop) {
                let (handler, context) = loopBound.value
                handler.turn.resumed()
                handler.serveUnanswered(context)
            }
            return
        }
        guard let (head, body) = unanswered else { return }
        unanswered = nil
        // The request is whole; the deadline starts again once it is answered.
        deadline.stop()
        route(context, head, body: body)
    }

    /// A request in absolute form (`GET http://host:port/stats`, RFC 9112 3.2.2), which a
    /// server must take, as its origin form (`/stats`) with the target's authority as its Host
    /// (the Host header, if any, is ignored). It got 400. Any other head as it is.
    static func originForm(_ head: HTTPRequestHead) -> HTTPRequestHead {
        let uri = head.uri
        let lowered = uri.prefix(8).lowercased()
        let schemeLength = lowered.hasPrefix("http://") ? 7 : lowered.hasPrefix("https://") ? 8 : 0
        // Two Hosts are refused as ever (`hostFieldProblem`), whatever the target says.
        guard schemeLength > 0, head.headers["Host"].count <= 1 else { return head }
        let rest = uri.dropFirst(schemeLength)
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        var normalized = head
        let path = rest[authorityEnd...]
        normalized.uri = path.hasPrefix("/") ? String(path) : "/" + path
        normalized.headers.remove(name: "Host")
        normalized.headers.add(name: "Host", value: String(rest[..<authorityEnd]))
        return normalized
    }

    /// `Expect: 100-continue` in HTTP/1.1 (RFC 9110 10.1.1; an HTTP/1.0 one is ignored): the
    /// client holds its body back until it hears from the server, or for a second of its own
    /// (curl), which every such POST /publish cost it.
    static func expectsContinue(_ head: HTTPRequestHead) -> Bool {
        guard head.version.major > 1 || head.version.minor >= 1 else { return false }
        return head.headers["Expect"].contains { $0.lowercased() == "100-continue" }
    }

    /// An `Expect` of an HTTP/1.1 request other than 100-continue, which no server here meets.
    static func unmetExpectation(_ head: HTTPRequestHead) -> String? {
        guard head.version.major > 1 || head.version.minor >= 1 else { return nil }
        return head.headers["Expect"].first { $0.lowercased() != "100-continue" }
    }

    /// Asks for the body with `100 Continue`, or refuses at once what the head alone refuses
    /// (`refusalOfExpectation`): the client then never sends the body.
    private func answerExpectation(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        guard let refusal = refusalOfExpectation(head) else {
            context.writeAndFlush(
                wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            return
        }
        // A request refused here never reaches `route`, which counts the others. Closed after
        // a grace, not at once, since the client may send the body regardless: the close would
        // reset the connection, and the answer with it.
        shared.counters.httpRequests.add(1, ordering: .relaxed)
        count(refusal.status, refusal.code)
        refuseAndClose(context, refusal.status, refusal.code, refusal.message, head, headers: refusal.headers)
    }

    /// What refuses an `Expect: 100-continue` request from its head alone: a target that does
    /// not parse, what `refusalBeforeBody` refuses (credentials included), and a Content-Length
    /// over max_frame.
    private func refusalOfExpectation(_ head: HTTPRequestHead) -> Refusal? {
        guard let target = RequestTarget(uri: head.uri) else {
            return Refusal(status: .badRequest, code: "bad_request", message: Self.invalidTarget)
        }
        if let refusal = refusalBeforeBody(head, target, credentials: true) { return refusal }
        let limit = shared.settings.maxFrame
        if let length = head.headers.first(name: "Content-Length").flatMap(Int.init), length > limit {
            return Refusal(
                status: .payloadTooLarge, code: "too_large",
                message:
                    "a request body may have at most max_frame (\(limit)) bytes; split a batch into several requests")
        }
        return nil
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if case .messages(let outbox, _, _, _, _) = stream { outbox.writabilityChanged() }
        serveUnanswered(context)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch stream {
        case .messages(let outbox, let keepAlive, let expiry, let user, let prefixes):
            keepAlive.cancel()
            expiry?.cancel()
            shared.claims.release(prefixes, user: user)
            if let user { shared.counters.userLeft(user) }
            shared.linkMailbox.post(.detach(outbox.id))
            shared.counters.sseClients.add(-1, ordering: .relaxed)
        case .status(let id):
            shared.statusFeed.leave(id)
            shared.counters.statusClients.add(-1, ordering: .relaxed)
        case nil:
            break
        }
        stream = nil
        deadline.stop()
        slot.release()
        context.fireChannelInactive()
    }

    /// A request NIO's decoder could not read (a garbled request line, HTTP/2.0, a folded header,
    /// a bad Content-Length...) is answered 400 and the connection closed: nothing after it can
    /// be read. Left to NIO's error handler, the 400 (with Connection: close) was written and the
    /// connection kept, until the request deadline wrote a 408 after it, 10 s later.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            // The upgrader's refusals and the decoder's complaints about bytes after the error
            // land here too: the request they concern is answered, or the connection closing.
            return context.fireErrorCaught(error)
        }
        // Bytes after a request that said Connection: close (or an HTTP/1.0 one without
        // keep-alive): its answer closes the connection, and nothing more is read or answered
        // (RFC 9112 9.6). They got a 400 after the answer, counted as a bad request.
        if parserError == .closedConnection { return }
        // The client hung up in the middle of its request: there is no one to answer, and no
        // bad request either (a churn of such clients, 9,191 of them, swamped the real ones
        // in `zpub_http_rejected_total{reason="bad_request"}`).
        if parserError == .invalidEOFState { return }
        guard stream == nil, !closingForError else { return }
        shared.counters.rejectedBadRequest.add(1, ordering: .relaxed)
        refuseAndClose(
            context, .badRequest, "bad_request",
            "the request is not valid HTTP/1.1 (\(Self.describe(parserError))); the connection is closed", nil)
    }

    /// What was wrong, in the request's terms: the parser's names said "paused (swift-http-parser
    /// error)" of an HTTP/2 client's preface (a walkthrough, 2026-12-07).
    static func describe(_ error: HTTPParserError) -> String {
        switch error {
        case .paused: return "an HTTP/2 preface: this gateway speaks HTTP/1.1 (curl --http1.1)"
        case .invalidContentLength: return "its Content-Length is not valid"
        case .unexpectedContentLength: return "its Content-Length is not valid, or comes beside Transfer-Encoding"
        case .invalidChunkSize: return "a chunk's size is not valid"
        case .invalidVersion: return "its HTTP version is not 1.0 or 1.1"
        case .invalidMethod: return "its method is not valid"
        case .invalidURL: return "its target is not valid"
        case .invalidHeaderToken, .invalidConstant: return "a header is not valid"
        case .headerOverflow: return "its headers are too long"
        case .lfExpected: return "a line does not end in CRLF"
        case .invalidCharactersUsed: return "it holds characters HTTP does not allow"
        case .unknown: return "it cannot be read (Content-Length beside Transfer-Encoding, or a line without its CR)"
        default:
            var text = String(describing: error)
            for suffix in [" (swift-http-parser error)", " (http_parser error)"] where text.hasSuffix(suffix) {
                text.removeLast(suffix.count)
            }
            return text
        }
    }

    /// Answers a request that cannot be served with an error and ends the connection: nothing
    /// more is read (the rest of its body, bytes after a parse error), and it is closed once
    /// the answer is written (Connection: close) or after the grace if the client does not
    /// read it. The request deadline stops, or its 408 would follow the answer.
    private func refuseAndClose(
        _ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ code: String, _ message: String,
        _ head: HTTPRequestHead?, headers: HTTPHeaders = HTTPHeaders()
    ) {
        closingForError = true
        self.head = nil
        unanswered = nil
        // Said, so that a keep-alive client does not send its next request here to no answer;
        // and the output ends once the answer is written (the client reads the end of the
        // stream at once), while what the client still sends is read and dropped until the
        // grace is over: closed at once, with its body unread, the connection was reset, and
        // the answer with it.
        var headers = headers
        headers.replaceOrAdd(name: "Connection", value: "close")
        // Answered as to a keep-alive request, whatever the client said: `respond` closes a
        // connection that is not kept alive at once, unread body and all.
        var answered = head ?? HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")
        answered.headers.replaceOrAdd(name: "Connection", value: "keep-alive")
        respondError(context, status, code, message, answered, headers: headers)
        deadline.stop()
        context.close(mode: .output, promise: nil)
        Goodbye.closeAfterGrace(context.channel)
    }

    // MARK: Routing

    private func route(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, body: [UInt8]) {
        shared.counters.httpRequests.add(1, ordering: .relaxed)
        // `OPTIONS *` asks about the server as a whole (RFC 9110 9.3.7): what any path takes.
        if head.method == .OPTIONS && head.uri == "*" {
            if let refusal = shared.hostRefusal(head, viaLoopback: viaLoopback) {
                count(refusal.status, refusal.code)
                return respondError(context, refusal.status, refusal.code, refusal.message, head)
            }
            return respond(
                context, head, .noContent, contentType: nil, body: [], headers: ["Allow": "GET, HEAD, POST, OPTIONS"])
        }
        guard let target = RequestTarget(uri: head.uri) else {
            count(.badRequest)
            return respondError(context, .badRequest, "bad_request", Self.invalidTarget, head)
        }
        if let refusal = refusalBeforeBody(head, target) {
            count(refusal.status, refusal.code)
            return respondError(context, refusal.status, refusal.code, refusal.message, head, headers: refusal.headers)
        }
        if head.method == .OPTIONS { return preflight(context, head, target) }
        if target.path == "/publish" { return publish(context, head, target, body: body) }
        let operatorPages: Set<String> = ["/", "/watch", "/status/events", "/stats", "/metrics"]
        if let required = shared.settings.operatorToken, operatorPages.contains(target.path) {
            let presented = shared.presentedTokens(head, target)
            if !presented.contains(required) {
                count(.unauthorized)
                // A wrong token read as a missing one (a walkthrough): say which it was.
                let given = presented.isEmpty ? "" : " (the token given is not it)"
                return respondError(
                    context, .unauthorized, "operator_token_required",
                    "\(target.path) shows every topic and subscription: it needs the operator_token\(given) (Authorization: Bearer, or ?access_token= for the pages)",
                    head)
            }
        }
        if target.path == "/events" || target.path == "/status/events" {
            // A stream's events go out as chunks, shared by every client: HTTP/1.0 has no
            // chunks, and its client would read the chunks' sizes as events. nginx in front
            // speaks 1.0 unless told otherwise.
            guard head.version.major > 1 || head.version.minor >= 1 else {
                shared.counters.rejectedBadRequest.add(1, ordering: .relaxed)
                return respondError(
                    context, .httpVersionNotSupported, "http_version_not_supported",
                    "\(target.path) streams events in HTTP/1.1 chunks; send the request in HTTP/1.1 (behind nginx: proxy_http_version 1.1;)",
                    head)
            }
            // The stream's head only: a HEAD opens no stream and holds no client's place. It
            // is refused as the GET would be (RFC 9110 9.3.2): it was 200 without a prefix, or
            // without a protected prefix's token.
            if head.method == .HEAD {
                if target.path == "/events", let refusal = streamRefusal(head, target) {
                    count(refusal.status, refusal.code)
                    return respondError(context, refusal.status, refusal.code, refusal.message, head)
                }
                return respond(context, head, .ok, contentType: "text/event-stream; charset=utf-8", body: [])
            }
        }
        switch target.path {
        case "/":
            respond(context, head, .ok, contentType: "text/html; charset=utf-8", body: Array(StatusPage.html.utf8))
        case "/watch":
            respond(context, head, .ok, contentType: "text/html; charset=utf-8", body: Array(StatusPage.watchHTML.utf8))
        case "/healthz":
            health(context, head)
        case "/stats":
            stats(context, head)
        case "/metrics":
            metrics(context, head)
        case "/events":
            events(context, head, target)
        case "/status/events":
            statusEvents(context, head)
        case "/ws":
            // The upgrader refused it, or never saw it: say why.
            if head.headers["Upgrade"].contains(where: { $0.lowercased().contains("websocket") }) {
                // NIO's upgrader looks at the first request of a connection only.
                if answeredBefore {
                    shared.counters.rejectedBadRequest.add(1, ordering: .relaxed)
                    return respondError(
                        context, .badRequest, "upgrade_not_first",
                        "a WebSocket upgrade is taken only as the first request on a connection; open a new connection for it",
                        head)
                }
                if let (status, code, message, headers) = shared.handshakeProblem(head) {
                    shared.counters.rejectedBadRequest.add(1, ordering: .relaxed)
                    return respondError(context, status, code, message, head, headers: headers)
                }
            }
            if let (status, code, message) = shared.webSocketRefusal(head, viaLoopback: viaLoopback) {
                count(status, code)
                return respondError(context, status, code, message, head)
            }
            shared.counters.rejectedBadRequest.add(1, ordering: .relaxed)
            // RFC 9110 15.5.22: a 426 names the protocol to upgrade to.
            respondError(
                context, .upgradeRequired, "upgrade_required",
                "/ws is a WebSocket endpoint: send Connection: Upgrade, Upgrade: websocket (RFC 6455)", head,
                headers: ["Upgrade": "websocket", "Connection": "Upgrade"])
        default:
            notFound(context, head, target)
        }
    }

    /// The gateway's paths, in the order `not_found` lists them.
    static let pathList = [
        "/", "/watch", "/ws", "/events", "/publish", "/status/events", "/healthz", "/stats", "/metrics",
    ]
    static let paths = Set(pathList)

    private func notFound(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ target: RequestTarget) {
        count(.notFound)
        respondError(context, .notFound, "not_found", Self.noSuchPath(target), head)
    }

    static let invalidTarget =
        "the request target is not a valid path and query: it starts with /, and its %XX escapes are two hex digits that decode to UTF-8 (a prefix that is not UTF-8 is for ZeroMQ clients: the gateway's clients name theirs in UTF-8)"

    static func noSuchPath(_ target: RequestTarget) -> String {
        "no such path \(target.path); paths are \(pathList.joined(separator: ", "))"
    }

    /// An error answer that the request's head alone decides.
    struct Refusal {
        var status: HTTPResponseStatus
        var code: String
        var message: String
        var headers = HTTPHeaders()
    }

    /// What refuses a request before its body is read: a path that does not exist, a method
    /// the path does not take, and for POST /publish an origin not allowed, or with
    /// `credentials` a token that does not hold, or none where `allow_anonymous = false`.
    /// `route` answers these first (and `publish` checks the token, whose credentials it
    /// needs); a request that sent
    /// `Expect: 100-continue` gets them instead of the 100, and never sends its body (RFC 9110
    /// 10.1.1).
    private func refusalBeforeBody(_ head: HTTPRequestHead, _ target: RequestTarget, credentials: Bool = false)
        -> Refusal?
    {
        // A path that does not exist is that whatever the method.
        guard Self.paths.contains(target.path) else {
            return Refusal(status: .notFound, code: "not_found", message: Self.noSuchPath(target))
        }
        // Before anything a browser may read (`AccessPolicy.checkHost`).
        if let refusal = shared.hostRefusal(head, viaLoopback: viaLoopback) {
            return Refusal(status: refusal.status, code: refusal.code, message: refusal.message)
        }
        if head.method == .OPTIONS { return nil }
        if target.path == "/publish" {
            guard head.method == .POST else {
                var refusal = Refusal(
                    status: .methodNotAllowed, code: "method_not_allowed",
                    message: "/publish takes POST with a JSON body")
                refusal.headers.add(name: "Allow", value: "POST, OPTIONS")
                return refusal
            }
            // A page of another origin may POST here without a preflight (a text/plain body):
            // only the origins allowed may publish through a visitor's browser.
            if let denial = shared.policy.checkOrigin(
                head.headers.first(name: "Origin"), host: head.headers.first(name: "Host"))
            {
                return Refusal(status: .forbidden, code: denial.code, message: denial.message)
            }
            if credentials {
                switch shared.credentials(head, target) {
                case .failure(let rejection):
                    return Refusal(status: .unauthorized, code: rejection.reason.rawValue, message: rejection.message)
                case .success(let presented) where shared.policy.isAnonymousRefused(presented):
                    let denial = AccessPolicy.Denial.credentialsRequired(presented: presented.presentedAny)
                    return Refusal(status: .unauthorized, code: denial.code, message: denial.message)
                case .success:
                    break
                }
            }
            return nil
        }
        guard head.method == .GET || head.method == .HEAD else {
            var refusal = Refusal(
                status: .methodNotAllowed, code: "method_not_allowed",
                message: "\(head.method) is not supported; use GET")
            refusal.headers.add(name: "Allow", value: "GET, HEAD, OPTIONS")
            return refusal
        }
        return nil
    }

    /// `POST /publish`: every message checked first (all or nothing), then handed to the broker
    /// through the gateway's link. 200 `{"published": N, "seq": [...]}` once the broker has
    /// forwarded them all; 503 if its queue was full, or forwarding paused, part way (the first N
    /// went through).
    private func publish(
        _ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ target: RequestTarget, body: [UInt8]
    ) {
        // The origin and the token were checked from the head (`refusalBeforeBody`).
        let messages: [[[UInt8]]]
        switch PublishRequest.parse(body) {
        case .success(let parsed): messages = parsed
        case .failure(let problem):
            shared.counters.rejectedBadRequest.add(1, ordering: .relaxed)
            return respondError(context, .badRequest, "bad_request", problem.message, head)
        }
        let credentials: Credentials
        switch shared.credentials(head, target) {
        case .success(let presented): credentials = presented
        case .failure(let rejection):
            count(.unauthorized)
            return respondError(context, .unauthorized, rejection.reason.rawValue, rejection.message, head)
        }
        let policy = shared.policy
        for frames in messages {
            guard let denial = policy.checkPublish(frames[0], credentials) else { continue }
            if denial.isUnauthorized {
                count(.unauthorized)
                return respondError(context, .unauthorized, denial.code, denial.message, head)
            }
            if case .publishNotAllowed = denial {
                shared.counters.rejectedBadRequest.add(1, ordering: .relaxed)
            } else {
                count(.forbidden, denial.code)
            }
            return respondError(context, .forbidden, denial.code, denial.message, head)
        }
        for frames in messages {
            guard let problem = shared.oversized(frames) else { continue }
            shared.counters.rejectedBadRequest.add(1, ordering: .relaxed)
            return respondError(context, .payloadTooLarge, "message_too_large", problem, head)
        }
        let promise = context.eventLoop.makePromise(of: PublishReceipt.self)
        // Refused once the link has stopped: the promise then fails here (answered 503
        // "stopping"), instead of being left unanswered, which NIO takes for a leak.
        if !shared.linkMailbox.post(.publishBatch(messages, receipt: promise)) {
            promise.fail(GatewayError("the gateway stopped"))
        }
        // The broker answers within microseconds; a hung forwarding loop must not hold the
        // request for ever (the watchdog restarts such a daemon).
        let answered = NIOLoopBoundBox(false, eventLoop: context.eventLoop)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let timeout = context.eventLoop.scheduleTask(in: Self.receiptTimeout) {
            guard !answered.value else { return }
            answered.value = true
            let (handler, context) = loopBound.value
            handler.respondError(
                context, .serviceUnavailable, "broker_unresponsive",
                "the broker did not confirm the messages within \(Self.receiptTimeout.nanoseconds / 1_000_000_000) s; they may still be forwarded",
                head)
        }
        promise.futureResult.whenComplete { result in
            guard !answered.value else { return }
            answered.value = true
            timeout.cancel()
            let (handler, context) = loopBound.value
            guard case .success(let receipt) = result else {
                return handler.respondError(
                    context, .serviceUnavailable, "unavailable", "the gateway is stopping", head)
            }
            let published = receipt.sequences.count
            if receipt.passive > 0 {
                handler.respondError(
                    context, .serviceUnavailable, "passive",
                    "this broker is the passive one of a pair: it forwards nothing until it takes over; publish through the active broker's gateway (\(published) of \(messages.count) messages went through)",
                    head)
            } else if receipt.paused > 0 {
                handler.respondError(
                    context, .serviceUnavailable, "paused",
                    "forwarding is paused (PAUSE on the control socket; RESUME restarts it): \(published) of \(messages.count) messages went through",
                    head)
            } else if receipt.busy > 0 {
                handler.respondError(
                    context, .serviceUnavailable, "broker_busy",
                    "the broker's queue was full after \(published) of \(messages.count) messages; send the rest again later",
                    head)
            } else {
                handler.respond(
                    context, head, .ok, contentType: "application/json", body: Array(Self.receiptJSON(receipt).utf8))
            }
        }
    }

    static let receiptTimeout = TimeAmount.seconds(10)

    /// `{"published":N}`, and `"seq"` (one per message, null where history keeps nothing) when
    /// history keeps any of them.
    static func receiptJSON(_ receipt: PublishReceipt) -> String {
        var text = "{\"published\":\(receipt.sequences.count)"
        if receipt.sequences.contains(where: { $0 != nil }) {
            text += ",\"seq\":[" + receipt.sequences.map { $0.map(String.init) ?? "null" }.joined(separator: ",") + "]"
        }
        return text + "}\n"
    }

    private func count(_ status: HTTPResponseStatus, _ code: String = "") {
        switch status {
        case .forbidden where code == "origin_not_allowed" || code == "host_not_allowed":
            shared.counters.rejectedOrigin.add(1, ordering: .relaxed)
        case .forbidden: shared.counters.rejectedToken.add(1, ordering: .relaxed)
        case .unauthorized: shared.counters.rejectedToken.add(1, ordering: .relaxed)
        case .serviceUnavailable where code == "gateway_full":
            shared.counters.rejectedGatewayFull.add(1, ordering: .relaxed)
        case .tooManyRequests where code == "user_full":
            shared.counters.rejectedUserFull.add(1, ordering: .relaxed)
        case .serviceUnavailable: shared.counters.rejectedFull.add(1, ordering: .relaxed)
        case .notFound: shared.counters.notFound.add(1, ordering: .relaxed)
        // A method a path does not take is the client's mistake, not a bad request.
        case .methodNotAllowed: break
        default: shared.counters.rejectedBadRequest.add(1, ordering: .relaxed)
        }
    }

    /// `OPTIONS`: a CORS preflight when it carries an Origin, answered for the origins requests
    /// are accepted from (`checkOrigin`: those listed, and a page served by zpubd itself);
    /// without one it is no preflight, and gets what the path allows. It was refused 403 with
    /// advice to list "(none)" in allowed_origins, and a same-origin preflight was refused
    /// though the request it announced is accepted.
    private func preflight(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ target: RequestTarget) {
        var headers = HTTPHeaders()
        headers.add(name: "Allow", value: target.path == "/publish" ? "POST, OPTIONS" : "GET, HEAD, OPTIONS")
        guard let origin = head.headers.first(name: "Origin") else {
            return respond(context, head, .noContent, contentType: nil, body: [], headers: headers)
        }
        if let denial = shared.policy.checkOrigin(origin, host: head.headers.first(name: "Host")) {
            shared.counters.rejectedOrigin.add(1, ordering: .relaxed)
            return respondError(context, .forbidden, denial.code, denial.message, head)
        }
        // A listed origin gets Access-Control-Allow-Origin from respond() (`addCORS`), as every
        // response does: added here as well, it went out twice, which browsers refuse.
        if shared.policy.corsOrigin(for: origin) == nil { Self.allowOrigin(origin, in: &headers) }
        headers.add(name: "Access-Control-Allow-Methods", value: "GET, HEAD, POST, OPTIONS")
        headers.add(name: "Access-Control-Allow-Headers", value: "Authorization, Content-Type, Last-Event-ID")
        headers.add(name: "Access-Control-Max-Age", value: "600")
        respond(context, head, .noContent, contentType: nil, body: [], headers: headers)
    }

    // MARK: Operators

    private func health(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        shared.controlShared(.health, on: context.eventLoop).whenComplete { result in
            let (handler, context) = loopBound.value
            guard case .success(let reply) = result, case .health(let report) = reply else {
                let reason = Self.failure(result)
                return handler.respondError(
                    context, .serviceUnavailable, "unavailable", "the broker did not answer HEALTH: \(reason)", head)
            }
            var body = reply.json
            // As `zpub health` without --passive-ok: an active broker that could not bind its
            // producers' endpoints is not one to send them to.
            let serving = report.servingProblem
            if !report.isHealthy() {
                let reason =
                    switch report.status {
                    case .paused: "forwarding is paused (PAUSE on the control socket); RESUME restarts it"
                    case .passive:
                        "this broker is the \(report.pair?.state.rawValue ?? "passive") one of a pair: clients go to the active one (its peer, whose pair endpoint is \(report.pair?.peer ?? "not known"))"
                    case .ok: serving?.message ?? ""
                    case .stopping: "the broker is shutting down (SIGTERM or SIGINT): clients go to another"
                    case .unhealthy:
                        report.forwarding == .notResponding
                            ? "the forwarding loop is not responding: stalled, or overloaded? (zpubd's log says more)"
                            : "the forwarding loop says \(report.forwarding.rawValue)"
                    default: "the broker's status is \(report.status.rawValue)"
                    }
                let problem = serving.map { ",\"problem\":\(WireFormat.jsonString($0.kind))" } ?? ""
                body =
                    Array(
                        "{\"status\":\(WireFormat.jsonString(report.status.rawValue)),\"reason\":\(WireFormat.jsonString(reason))\(problem),\"health\":"
                            .utf8) + body + Array("}".utf8)
            }
            handler.respond(
                context, head, report.isHealthy() ? .ok : .serviceUnavailable,
                contentType: "application/json", body: body)
        }
    }

    private func stats(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        shared.controlShared(.stats, on: context.eventLoop).whenComplete { result in
            let (handler, context) = loopBound.value
            guard case .success(let reply) = result, case .stats = reply else {
                return handler.respondError(
                    context, .serviceUnavailable, "unavailable",
                    "the broker did not answer STATS: \(Self.failure(result))", head)
            }
            handler.respond(context, head, .ok, contentType: "application/json", body: reply.json)
        }
    }

    private func metrics(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let counters = shared.counters
        shared.controlShared(.stats, on: context.eventLoop).whenComplete { result in
            let (handler, context) = loopBound.value
            var stats: StatsSnapshot?
            if case .success(.stats(let value)) = result { stats = value }
            let text = PrometheusText.render(stats: stats, gateway: counters.snapshot)
            handler.respond(context, head, .ok, contentType: PrometheusText.contentType, body: Array(text.utf8))
        }
    }

    /// Why a control request gave no usable reply, for an error message.
    private static func failure(_ result: Result<ControlReply, any Error>) -> String {
        switch result {
        case .success(let reply): reply.failure?.message ?? "an unexpected reply"
        case .failure(let error): "\(error)"
        }
    }

    // MARK: Event streams

    /// What refuses `/events` before its stream starts: no prefix, or what `subscriptionRefusal`
    /// finds (a token missing, a prefix too long...). The GET and the HEAD alike.
    private func streamRefusal(_ head: HTTPRequestHead, _ target: RequestTarget) -> Refusal? {
        let prefixes = target.values("prefix")
        guard !prefixes.isEmpty else {
            return Refusal(
                status: .badRequest, code: "no_prefix",
                message: "name the topic prefixes: /events?prefix=weather.&prefix=state. (prefix= for every topic)")
        }
        if let (status, code, message) = shared.subscriptionRefusal(head, target, prefixes: prefixes) {
            return Refusal(status: status, code: code, message: message)
        }
        return nil
    }

    private func events(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ target: RequestTarget) {
        if let refusal = streamRefusal(head, target) {
            count(refusal.status, refusal.code)
            return respondError(context, refusal.status, refusal.code, refusal.message, head)
        }
        let prefixes = target.values("prefix")
        // Read once more for the stream's expiry: a JWT that expired (or whose key a reload
        // removed) since the check above is refused, not streamed with no end.
        let credentials: Credentials
        switch shared.credentials(head, target) {
        case .success(let read): credentials = read
        case .failure(let rejection):
            count(.unauthorized, rejection.reason.rawValue)
            return respondError(context, .unauthorized, rejection.reason.rawValue, rejection.message, head)
        }
        let lastEventID = head.headers.first(name: "Last-Event-ID") ?? target.value("last_event_id")
        let resume: ResumePoint? = lastEventID.flatMap { id in
            if let sequence = WireFormat.historySequence(fromEventID: id) { return .history(after: sequence) }
            return WireFormat.sequence(fromEventID: id).map { .lastValue(after: $0) }
        }
        // An unkept event's id also says how far the kept ones had come.
        let keptAfter = resume == nil ? nil : lastEventID.flatMap(WireFormat.historySequence(inCacheEventID:))
        // Checked above; claimed now, when it counts (another client may have taken the room).
        let claimed = Set(prefixes.map { Array($0.utf8) })
        let user = credentials.user?.subject
        if let (status, code, message) = shared.claimRefusal(
            shared.claims.claim(claimed, user: user), claimed, user: user)
        {
            count(status, code)
            return respondError(context, status, code, message, head)
        }
        guard startStream(context, head) else {
            shared.claims.release(claimed, user: user)
            return
        }
        let outbox = ClientOutbox(
            id: shared.makeClientID(), kind: .serverSentEvents, channel: context.channel,
            limit: shared.settings.clientQueue, writeDelayMilliseconds: shared.settings.writeDelayMilliseconds,
            counters: shared.counters, rawWriter: context.pipeline.syncOperations.rawWriterContext())
        shared.counters.sseClients.add(1, ordering: .relaxed)
        shared.counters.sseConnections.add(1, ordering: .relaxed)
        // A comment now and then keeps proxies from closing an idle stream.
        let channel = context.channel
        let keepAliveChunk = WireFormat.chunk(Array(":\n\n".utf8))
        let keepAlive = context.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(15), delay: .seconds(15)) { _ in
            if channel.isWritable && !outbox.isClosed {
                outbox.writeRaw(keepAliveChunk)
                channel.flush()
            }
        }
        // A JWT's stream ends at its expiry, with the reason as its last event; the browser's
        // EventSource then reconnects with the same URL and is refused (401) until the page
        // opens a new one with a fresh token.
        var expiry: Scheduled<Void>?
        var subject: String?
        if let user = credentials.user {
            subject = user.subject
            shared.counters.userConnected(user.subject)
            let shared = self.shared
            expiry = context.eventLoop.scheduleTask(in: WireFormat.timeUntil(user.expires)) {
                shared.counters.droppedExpired.add(1, ordering: .relaxed)
                let data = Array(
                    WireFormat.errorJSON(
                        code: "token_expired",
                        "the token of \(user.subject) expired; open the stream again with a fresh one"
                    ).utf8)
                let written = channel.eventLoop.makePromise(of: Void.self)
                outbox.endStream(lastEvent: data, promise: written)
                channel.flush()
                // A reader that stopped reading must not keep the stream past its token's exp.
                Goodbye.close(channel, once: written.futureResult)
            }
        }
        stream = .messages(outbox, keepAlive, expiry, user: subject, prefixes: claimed)
        shared.linkMailbox.post(
            .attach(outbox, prefixes: prefixes.map { Array($0.utf8) }, resume: resume, keptAfter: keptAfter))
    }

    /// Every second: STATS and the gateway's counters; every five: the busiest topics and
    /// subscriptions, from the one poll all status clients share (`StatusFeed`).
    private func statusEvents(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        if let denial = shared.policy.checkOrigin(
            head.headers.first(name: "Origin"), host: head.headers.first(name: "Host"))
        {
            shared.counters.rejectedOrigin.add(1, ordering: .relaxed)
            return respondError(context, .forbidden, "origin_not_allowed", denial.message, head)
        }
        if shared.clientCount >= shared.settings.maxClients {
            shared.counters.rejectedFull.add(1, ordering: .relaxed)
            return respondError(
                context, .serviceUnavailable, "too_many_clients",
                "the gateway has max_clients (\(shared.settings.maxClients)) clients; try again later", head)
        }
        guard startStream(context, head) else { return }
        shared.counters.statusClients.add(1, ordering: .relaxed)
        stream = .status(shared.statusFeed.join(context.channel))
    }

    /// Writes the stream's head. False when the connection closed meanwhile (the write failed,
    /// and NIO closed it at once, before there was a stream for `channelInactive` to end): the
    /// caller must then register nothing, or it would count a client that is gone for good.
    private func startStream(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) -> Bool {
        // A client now: it counts against max_clients, and streams for as long as it likes.
        deadline.stop()
        slot.release()
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/event-stream; charset=utf-8")
        headers.add(name: "Cache-Control", value: "no-cache")
        headers.add(name: "Date", value: HTTPDate.now())
        // nginx and friends: do not buffer an event stream.
        headers.add(name: "X-Accel-Buffering", value: "no")
        addCORS(&headers, head)
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil
        )
        // The reconnection delay a browser's EventSource uses, then the stream.
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "retry: 2000\n\n")))), promise: nil)
        return context.channel.isActive
    }

    // MARK: Responses

    private func addCORS(_ headers: inout HTTPHeaders, _ head: HTTPRequestHead) {
        if let origin = shared.policy.corsOrigin(for: head.headers.first(name: "Origin")) {
            Self.allowOrigin(origin, in: &headers)
        }
    }

    /// The CORS headers that let `origin` read a response (once per response: a browser
    /// refuses two).
    private static func allowOrigin(_ origin: String, in headers: inout HTTPHeaders) {
        headers.add(name: "Access-Control-Allow-Origin", value: origin)
        headers.add(name: "Vary", value: "Origin")
    }

    func respond(
        _ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ status: HTTPResponseStatus, contentType: String?,
        body: [UInt8], headers extra: HTTPHeaders = HTTPHeaders()
    ) {
        var headers = extra
        if let contentType { headers.add(name: "Content-Type", value: contentType) }
        headers.add(name: "Content-Length", value: String(body.count))
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "Date", value: HTTPDate.now())
        addCORS(&headers, head)
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
        // Before the writes: writing the end lets NIO hand over a pipelined request at once,
        // re-entrantly, which must find this one answered (and must stop the deadline itself).
        // The next request is due within the deadline; and a client that never reads this
        // response (so that the close below never comes) is closed by it too.
        answeredBefore = true
        let channel = context.channel
        if channel.isActive { restartDeadline(context) }
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
            promise: nil)
        if head.method != .HEAD && !body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }

    /// `{"error":{"code":...,"message":...}}`, as on the control socket.
    func respondError(
        _ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ code: String, _ message: String,
        _ head: HTTPRequestHead? = nil, headers: HTTPHeaders = HTTPHeaders()
    ) {
        let body = Array(
            "{\"error\":{\"code\":\(WireFormat.jsonString(code)),\"message\":\(WireFormat.jsonString(message))}}\n".utf8
        )
        var headers = headers
        if status == .unauthorized { headers.add(name: "WWW-Authenticate", value: "Bearer") }
        var requestHead =
            head ?? HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["Connection": "close"])
        // A request for a foreign Host (DNS rebinding) ends its connection: its page may
        // have pipelined more, each answered cheaply, for as long as it keeps sending. One
        // without a valid Host is no request RFC 9112 lets the rest of the connection follow.
        if code == "host_not_allowed" || code == "bad_host" {
            requestHead.headers.replaceOrAdd(name: "Connection", value: "close")
        }
        respond(context, requestHead, status, contentType: "application/json", body: body, headers: headers)
    }
}

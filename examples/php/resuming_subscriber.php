<?php
// A subscriber that misses nothing across its own restarts (docs/history.md); the same
// protocol as examples/python/resuming_subscriber.py, with the PECL zmq extension.
//
// It keeps the history sequence of the last message it handled in a file. On start, with a
// position saved, it asks zpubd to replay what it missed (REPLAY, then HISTORY pages) and joins
// the live stream with no gap and no duplicate; live, it learns each message's sequence from
// the sequence markers ($zpub/seq/<topic>) that follow kept messages. zpubd must keep the
// prefix: zpubd --history orders. (with --state-dir to survive zpubd's own restarts too).
//
// Run: php resuming_subscriber.php [count]   (stops after count messages; forever without it)
// Environment: ZPUB_XPUB, ZPUB_CONTROL, ZPUB_PREFIX (orders.), ZPUB_POSITION_FILE (./position)

$xpub = getenv("ZPUB_XPUB") ?: "tcp://127.0.0.1:5556";
$control = getenv("ZPUB_CONTROL") ?: "tcp://127.0.0.1:5555";
$prefix = getenv("ZPUB_PREFIX") ?: "orders.";
$positionFile = getenv("ZPUB_POSITION_FILE") ?: "position";
$count = isset($argv[1]) ? (int)$argv[1] : null;
const SEQ = '$zpub/seq/';

$context = new ZMQContext();
$sub = $context->getSocket(ZMQ::SOCKET_SUB);
$sub->connect($xpub);
$sub->setSockOpt(ZMQ::SOCKOPT_SUBSCRIBE, $prefix);
$sub->setSockOpt(ZMQ::SOCKOPT_SUBSCRIBE, SEQ . $prefix); // the sequence of each kept message
$handled = 0;

// One request to zpubd's control socket; exits with zpubd's message if it is an error.
function ask(ZMQContext $context, string $control, string $request): array
{
    $req = $context->getSocket(ZMQ::SOCKET_REQ);
    $req->setSockOpt(ZMQ::SOCKOPT_LINGER, 0);
    $req->setSockOpt(ZMQ::SOCKOPT_RCVTIMEO, 10000);
    $req->connect($control);
    $req->send($request);
    $text = $req->recv();
    if ($text === false) {
        fwrite(STDERR, "zpubd did not answer $request within 10 s\n");
        exit(1);
    }
    $reply = json_decode($text, true);
    if (isset($reply["error"])) {
        fwrite(STDERR, "zpubd: " . $reply["error"]["message"] . "\n");
        exit(1);
    }
    return $reply;
}

// Prints a message and saves its position (null: a message history does not keep). True when
// `count` messages have been handled.
function handle(?int $sequence, array $frames): bool
{
    global $handled, $count, $positionFile;
    echo implode(" ", $frames), "\n";
    if ($sequence !== null) {
        file_put_contents($positionFile . ".new", (string)$sequence);
        rename($positionFile . ".new", $positionFile);
    }
    $handled++;
    return $count !== null && $handled >= $count;
}

// Control replies carry messages exactly: payload frames in base64, and the topic's bytes in
// topic_base64 when it is not UTF-8.
function stored(array $entry): array
{
    $topic = isset($entry["topic_base64"]) ? base64_decode($entry["topic_base64"]) : $entry["topic"];
    return array_merge([$topic], array_map("base64_decode", $entry["payload"]));
}

$marker = null;
$keptPrefixes = [];
if (file_exists($positionFile)) {
    $since = (int)file_get_contents($positionFile);
    $token = bin2hex(random_bytes(16));
    $marker = '$zpub/snapshot/' . $token;
    $sub->setSockOpt(ZMQ::SOCKOPT_SUBSCRIBE, $marker); // after the data prefix: the broker waits for it
    $reply = ask($context, $control, "REPLAY $token $since $prefix");
    if (!empty($reply["gap"])) {
        fwrite(STDERR, "missed {$reply["gap"]["from"]} to {$reply["gap"]["to"]}: no longer kept\n");
    }
    $keptPrefixes = $reply["prefixes"];
    $through = $reply["through"];
    $entries = $reply["messages"];
    while (true) {
        foreach ($entries as $entry) {
            if (handle($entry["seq"], stored($entry))) {
                exit(0);
            }
        }
        if (!$reply["more"] || !$entries) {
            break;
        }
        $last = end($entries)["seq"];
        $reply = ask($context, $control, "HISTORY since $last until $through $prefix");
        $entries = $reply["messages"];
    }
}

function startsWith(string $text, string $prefix): bool
{
    return strncmp($text, $prefix, strlen($prefix)) === 0;
}

$poll = new ZMQPoll();
$poll->add($sub, ZMQ::POLL_IN);
$pending = null; // a data message, until we know whether a sequence marker follows it
while (true) {
    if ($pending !== null) {
        $readable = $writable = [];
        if ($poll->poll($readable, $writable, 1000) === 0) {
            if (handle(null, $pending)) {
                break;
            }
            $pending = null;
            continue;
        }
    }
    $frames = $sub->recvMulti();
    if ($marker !== null && $frames[0] === $marker) {
        $sub->setSockOpt(ZMQ::SOCKOPT_UNSUBSCRIBE, $marker);
        $marker = null; // from here on everything is new
        continue;
    }
    if (startsWith($frames[0], SEQ)) {
        if ($pending !== null && substr($frames[0], strlen(SEQ)) === $pending[0]) {
            $done = handle((int)$frames[1], $pending);
            $pending = null;
            if ($done) {
                break;
            }
        }
        continue;
    }
    if ($pending !== null) {
        if (handle(null, $pending)) {
            break;
        }
        $pending = null;
    }
    if ($marker !== null) {
        foreach ($keptPrefixes as $kept) {
            if (startsWith($frames[0], $kept)) {
                continue 2; // before the marker, kept topics were in the replay
            }
        }
    }
    $pending = $frames;
}

<?php
// A subscriber: receives every message whose topic starts with "weather.".
// Run: php subscriber.php [count]   (stops after count messages; forever without it)
// For a primary/backup pair, give both brokers (ZPUB_XPUB="tcp://a:5556 tcp://b:5556"): the
// socket stays connected to both, and only the active one publishes.

$endpoints = preg_split('/\s+/', trim(getenv("ZPUB_XPUB") ?: "tcp://127.0.0.1:5556"));
$count = isset($argv[1]) ? (int)$argv[1] : null;

$context = new ZMQContext();
$sub = $context->getSocket(ZMQ::SOCKET_SUB);
foreach ($endpoints as $endpoint) {
    $sub->connect($endpoint);
}
$sub->setSockOpt(ZMQ::SOCKOPT_SUBSCRIBE, "weather."); // a prefix; "" subscribes to everything

for ($received = 0; $count === null || $received < $count; $received++) {
    $frames = $sub->recvMulti();
    echo implode(" ", $frames), "\n";
}

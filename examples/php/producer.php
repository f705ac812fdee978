<?php
// A producer: PUSHes results to zpubd, which republishes them to every subscriber.
// Needs PHP's zmq extension (Debian: apt install php-cli php-zmq). Run: php producer.php [count]
// For a primary/backup pair, give both brokers (ZPUB_PULL="tcp://a:5557 tcp://b:5557"): with
// ZMQ_IMMEDIATE the socket sends only to the broker that accepts connections, the active one.

$endpoints = preg_split('/\s+/', trim(getenv("ZPUB_PULL") ?: "tcp://127.0.0.1:5557"));
$count = (int)($argv[1] ?? 10);

$context = new ZMQContext();
$push = $context->getSocket(ZMQ::SOCKET_PUSH);
$push->setSockOpt(ZMQ::SOCKOPT_LINGER, 5000); // deliver what is queued, never hang on exit
$push->setSockOpt(ZMQ::SOCKOPT_IMMEDIATE, 1);     // queue only for a broker that is there
foreach ($endpoints as $endpoint) {
    $push->connect($endpoint);
}

for ($i = 0; $i < $count; $i++) {
    // Frame 1 is the topic subscribers filter on; the others are the payload.
    $push->sendmulti(["weather.paris", (string)$i, '{"celsius": 12}']);
    usleep(10000);
}

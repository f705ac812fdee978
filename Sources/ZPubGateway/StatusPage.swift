/// The pages zpubd serves itself: plain HTML, CSS and JavaScript in one string each, with no
/// build step and nothing fetched from elsewhere, so they work on a machine that is offline.
enum StatusPage {
    /// `/`: rates, subscriptions and topics, updated every second over SSE (/status/events).
    static let html = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>zpubd status</title>
        <style>
        body{font:15px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d232a}
        header{background:#1d232a;color:#fff;padding:.7em 1em;display:flex;justify-content:space-between;align-items:center}
        header h1{font-size:1.1em;margin:0}#state{font-size:.85em;padding:.15em .6em;border-radius:1em;background:#888}
        #state.ok{background:#2e7d32}#state.bad{background:#c62828}
        main{padding:.8em;max-width:960px;margin:auto}
        .grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(140px,1fr));gap:.6em}
        .card{background:#fff;border-radius:8px;padding:.6em .8em;box-shadow:0 1px 2px #0002}
        .card b{display:block;font-size:1.5em;font-variant-numeric:tabular-nums}
        .card span{font-size:.8em;color:#5b6570}
        h2{font-size:1em;margin:1.2em 0 .4em}
        table{width:100%;border-collapse:collapse;background:#fff;border-radius:8px;overflow:hidden;font-size:.9em}
        td,th{padding:.35em .6em;text-align:left;border-bottom:1px solid #eee;word-break:break-all}
        td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;word-break:normal}
        canvas{width:100%;height:60px;background:#fff;border-radius:8px;margin-top:.6em}
        footer{color:#5b6570;font-size:.8em;padding:1em;text-align:center}
        </style></head><body>
        <header><h1>zpubd</h1><span id="state">connecting</span></header>
        <main>
        <div class="grid">
        <div class="card"><b id="in">-</b><span>messages in / s</span></div>
        <div class="card"><b id="out">-</b><span>messages out / s</span></div>
        <div class="card"><b id="bin">-</b><span>bytes in / s</span></div>
        <div class="card"><b id="subs">-</b><span>subscriptions</span></div>
        <div class="card"><b id="topics">-</b><span>topics</span></div>
        <div class="card"><b id="peers">-</b><span>peers (pull / xsub / xpub)</span></div>
        <div class="card"><b id="clients">-</b><span>web clients (ws / sse)</span></div>
        <div class="card"><b id="drops">-</b><span>slow clients dropped</span></div>
        <div class="card"><b id="cache">-</b><span>last values cached</span></div>
        <div class="card"><b id="uptime">-</b><span>uptime</span></div>
        </div>
        <canvas id="chart" width="900" height="60"></canvas>
        <h2>Busiest topics</h2>
        <table><thead><tr><th>topic</th><th class="n">messages</th><th class="n">bytes</th></tr></thead><tbody id="topiclist"></tbody></table>
        <h2>Subscriptions</h2>
        <table><thead><tr><th>prefix</th><th class="n">subscribers</th></tr></thead><tbody id="sublist"></tbody></table>
        <h2 id="usershead" hidden>Users (JWT)</h2>
        <table id="users" hidden><thead><tr><th>user</th><th class="n">clients</th><th class="n">prefixes</th></tr></thead><tbody id="userlist"></tbody></table>
        </main>
        <footer>zpubd <span id="version"></span> &middot; <a href="/metrics">metrics</a> &middot; <a href="/stats">stats</a> &middot; <a href="/healthz">health</a> &middot; <a href="/watch">watch topics</a></footer>
        <script>
        "use strict";
        const $ = id => document.getElementById(id);
        const fmt = n => n >= 1e9 ? (n/1e9).toFixed(1)+"G" : n >= 1e6 ? (n/1e6).toFixed(1)+"M" : n >= 1e4 ? (n/1e3).toFixed(1)+"k" : String(Math.round(n));
        const dur = s => s >= 86400 ? Math.floor(s/86400)+"d "+Math.floor(s%86400/3600)+"h" : s >= 3600 ? Math.floor(s/3600)+"h "+Math.floor(s%3600/60)+"m" : Math.floor(s/60)+"m "+Math.floor(s%60)+"s";
        let last = null; const history = [];
        function row(cells){ const tr = document.createElement("tr"); cells.forEach((c,i)=>{ const td = document.createElement("td"); td.textContent = c; if(i) td.className = "n"; tr.appendChild(td); }); return tr; }
        function draw(){ const c = $("chart"), g = c.getContext("2d"); g.clearRect(0,0,c.width,c.height);
          const max = Math.max(1, ...history); g.strokeStyle = "#1565c0"; g.lineWidth = 2; g.beginPath();
          history.forEach((v,i)=>{ const x = c.width - (history.length-1-i)*(c.width/120), y = c.height-2-(v/max)*(c.height-4); i ? g.lineTo(x,y) : g.moveTo(x,y); }); g.stroke(); }
        // With an operator_token, this page was opened as /?access_token=...: pass it along.
        const token = new URLSearchParams(location.search).get("access_token");
        const source = new EventSource("/status/events" + (token ? "?access_token=" + encodeURIComponent(token) : ""));
        if (token) document.querySelectorAll("footer a").forEach(a => { a.href += "?access_token=" + encodeURIComponent(token); });
        source.onopen = () => { $("state").textContent = "live"; $("state").className = "ok"; };
        source.onerror = () => { $("state").textContent = "reconnecting"; $("state").className = "bad"; };
        source.addEventListener("stats", e => {
          const d = JSON.parse(e.data), s = d.stats, g = d.gateway, now = performance.now();
          if (last) { const dt = (now-last.t)/1000;
            const rin = (s.messages_in-last.in)/dt, rout = (s.messages_out-last.out)/dt;
            $("in").textContent = fmt(rin); $("out").textContent = fmt(rout); $("bin").textContent = fmt((s.bytes_in-last.bin)/dt);
            history.push(rin); if (history.length > 120) history.shift(); draw(); }
          last = {t: now, in: s.messages_in, out: s.messages_out, bin: s.bytes_in};
          $("subs").textContent = fmt(s.subscriptions.total); $("topics").textContent = fmt(s.topics.tracked);
          $("peers").textContent = [s.peers.pull||0, s.peers.xsub||0, s.peers.xpub||0].join(" / ");
          $("clients").textContent = g.websocket_clients + " / " + g.sse_clients; $("drops").textContent = fmt(g.dropped_slow);
          $("cache").textContent = s.last_value.enabled ? fmt(s.last_value.entries) : "off"; $("uptime").textContent = dur(s.uptime_s);
          $("state").textContent = s.forwarding === "running" ? "live" : s.forwarding; $("state").className = s.forwarding === "running" ? "ok" : "bad";
          $("users").hidden = $("usershead").hidden = g.user_count === 0;
          $("userlist").replaceChildren(...g.users.map(u => row([u.sub, fmt(u.clients), fmt(u.prefixes)])));
        });
        source.addEventListener("topics", e => { const t = $("topiclist"); t.replaceChildren(...JSON.parse(e.data).topics.map(x => row([x.topic, fmt(x.messages), fmt(x.bytes)]))); });
        source.addEventListener("subscriptions", e => { const t = $("sublist"); t.replaceChildren(...JSON.parse(e.data).subscriptions.map(x => row([x.prefix === "" ? "(everything)" : x.prefix, fmt(x.count)]))); });
        fetch("/healthz").then(r => r.json()).then(h => { $("version").textContent = h.version || (h.health && h.health.version) || ""; }).catch(() => {});
        </script></body></html>
        """

    /// `/watch?prefix=...`: a browser subscriber over WebSocket, showing the latest messages.
    static let watchHTML = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>zpubd watch</title>
        <style>
        body{font:15px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d232a}
        header{background:#1d232a;color:#fff;padding:.7em 1em}header h1{font-size:1.1em;margin:0}
        main{padding:.8em;max-width:960px;margin:auto}
        form{display:flex;gap:.4em}input{flex:1;font:inherit;padding:.3em}button{font:inherit}
        #status{font-size:.85em;color:#5b6570;margin:.4em 0}
        ol{list-style:none;padding:0;margin:0;font:13px/1.4 ui-monospace,monospace}
        li{background:#fff;margin:.2em 0;padding:.3em .5em;border-radius:4px;word-break:break-all}
        li b{color:#1565c0;font-weight:600;margin-right:.6em}
        </style></head><body>
        <header><h1>zpubd &middot; watch</h1></header>
        <main>
        <form id="form"><input id="prefix" placeholder="topic prefix, e.g. weather." aria-label="prefix"><button>subscribe</button></form>
        <div id="status">connecting</div>
        <ol id="messages"></ol>
        </main>
        <script>
        "use strict";
        const $ = id => document.getElementById(id);
        const params = new URLSearchParams(location.search);
        // A token in the page's address (?access_token=: a JWT or a static token) goes to the socket.
        const token = params.get("access_token");
        const socket = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws" + (token ? "?access_token=" + encodeURIComponent(token) : ""));
        socket.binaryType = "arraybuffer";
        let count = 0;
        function show(topic, text){ const li = document.createElement("li"); const b = document.createElement("b"); b.textContent = topic;
          li.append(b, text); $("messages").prepend(li); while ($("messages").children.length > 200) $("messages").lastChild.remove();
          count++; $("status").textContent = "subscribed; " + count + " messages"; }
        socket.onopen = () => { $("status").textContent = "connected"; for (const p of params.getAll("prefix")) socket.send(JSON.stringify({op: "subscribe", prefix: p})); };
        socket.onclose = e => { $("status").textContent = "closed (" + e.code + (e.reason ? ": " + e.reason : "") + ")"; };
        socket.onmessage = e => {
          if (typeof e.data !== "string") { const v = new DataView(e.data), frames = []; let at = 0;
            while (at + 4 <= v.byteLength) { const n = v.getUint32(at); frames.push(new Uint8Array(e.data, at+4, n)); at += 4+n; }
            show(new TextDecoder().decode(frames[0]), "(binary, " + frames.slice(1).reduce((a,f)=>a+f.length,0) + " bytes)"); return; }
          const m = JSON.parse(e.data);
          if (m.type === "message") show(m.topic, typeof m.payload === "string" ? m.payload : JSON.stringify(m.payload));
          else if (m.type === "subscribed") $("status").textContent = "subscribed to " + JSON.stringify(m.prefix);
          else if (m.type === "error") $("status").textContent = "error: " + m.message;
        };
        $("form").onsubmit = e => { e.preventDefault(); socket.send(JSON.stringify({op: "subscribe", prefix: $("prefix").value})); };
        </script></body></html>
        """
}

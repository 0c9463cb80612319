// Shoal chat demo: plain JavaScript, no dependencies.
// Connects to ws(s)://<this host>/chat (override with ?path=/other), reconnects after a drop.
(function () {
  'use strict';
  var params = new URLSearchParams(location.search);
  var path = params.get('path') || '/chat';
  if (path.charAt(0) !== '/') path = '/' + path;
  var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path;

  var log = document.getElementById('log');
  var statusEl = document.getElementById('status');
  var form = document.getElementById('form');
  var input = document.getElementById('input');
  var button = document.getElementById('send');
  document.getElementById('url').textContent = url;

  var ws = null;
  var retry = 0;
  var everOpen = false;
  var timer = null;

  function time() {
    var d = new Date();
    return ('0' + d.getHours()).slice(-2) + ':' + ('0' + d.getMinutes()).slice(-2) + ':' + ('0' + d.getSeconds()).slice(-2);
  }

  function add(kind, text) {
    var li = document.createElement('li');
    li.className = kind;
    var t = document.createElement('time');
    t.textContent = time();
    var span = document.createElement('span');
    span.textContent = text;   // never innerHTML: messages come from other people
    li.appendChild(t);
    li.appendChild(span);
    log.appendChild(li);
    while (log.children.length > 500) log.removeChild(log.firstChild);
    log.scrollTop = log.scrollHeight;
  }

  function setStatus(state, text) {
    statusEl.className = 'status ' + state;
    statusEl.textContent = text;
    var open = state === 'open';
    input.disabled = !open;
    button.disabled = !open;
    if (open) input.focus();
  }

  function connect() {
    clearTimeout(timer);
    setStatus('connecting', 'connecting…');
    try {
      ws = new WebSocket(url);
    } catch (e) {
      add('system', 'cannot connect: ' + e.message);
      return schedule();
    }
    ws.binaryType = 'arraybuffer';
    ws.onopen = function () {
      if (everOpen) add('system', 'reconnected');
      everOpen = true;
      retry = 0;
      setStatus('open', 'connected');
    };
    ws.onmessage = function (ev) {
      if (typeof ev.data === 'string') add('them', ev.data);
      else add('them', '[' + ev.data.byteLength + ' bytes of binary]');
    };
    ws.onclose = function (ev) {
      var wasOpen = !input.disabled;
      ws = null;
      // log the drop once; failed reconnection attempts only show in the status badge
      if (wasOpen) add('system', 'disconnected (code ' + ev.code + (ev.reason ? ': ' + ev.reason : '') + ')');
      schedule();
    };
    ws.onerror = function () { /* onclose follows and reconnects */ };
  }

  function schedule() {
    var delay = Math.min(10000, 500 * Math.pow(2, retry++));
    setStatus('closed', 'reconnecting in ' + Math.round(delay / 1000) + ' s');
    timer = setTimeout(connect, delay);
  }

  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var text = input.value;
    if (!text || !ws || ws.readyState !== WebSocket.OPEN) return;
    ws.send(text);
    add('me', text);
    input.value = '';
  });

  connect();
})();

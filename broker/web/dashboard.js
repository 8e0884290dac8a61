// The ringmq dashboard: reads /api/session, then /api/overview every
// REFRESH_MS, and renders it. Admin actions are POSTs carrying the
// session's CSRF token; the broker checks every one of them again.
'use strict';

const REFRESH_MS = 2000;
const state = { auth: null, user: null, csrf: null, timer: null, busy: false };

const $ = (id) => document.getElementById(id);

function fmtInt(n) {
  return Number(n).toLocaleString('en-US');
}

function fmtRate(n) {
  return n >= 100 ? fmtInt(Math.round(n)) : Number(n).toFixed(1);
}

function fmtBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return (i === 0 ? String(n) : n.toFixed(1)) + ' ' + units[i];
}

async function api(path, body) {
  const opts = { credentials: 'same-origin', headers: {} };
  if (body !== undefined) {
    opts.method = 'POST';
    opts.headers['Content-Type'] = 'application/json';
    if (state.csrf) opts.headers['X-CSRF-Token'] = state.csrf;
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  let data = null;
  try {
    data = await res.json();
  } catch (e) {
    data = { error: 'HTTP_' + res.status, message: res.statusText };
  }
  return { status: res.status, data };
}

function setStatus(text) {
  $('status').textContent = text;
}

function cell(row, text, field, value) {
  const td = document.createElement('td');
  td.textContent = text;
  if (field) td.dataset.field = field;
  if (value !== undefined) td.dataset.value = String(value);
  row.appendChild(td);
  return td;
}

function actionButton(td, label, onClick, danger) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  if (danger) b.className = 'danger';
  b.addEventListener('click', onClick);
  td.appendChild(b);
}

async function act(path, body, question) {
  if (question && !window.confirm(question)) return;
  const { status, data } = await api(path, body || {});
  if (status === 401) return showLogin('Your session ended: log in again.');
  if (status !== 200) {
    setStatus('Failed: ' + (data.message || data.error));
  } else {
    const what = Object.keys(data)[0];
    setStatus(what === 'paused' ? (data.paused ? 'Paused.' : 'Resumed.')
      : fmtInt(data[what]) + ' messages ' + what + '.');
  }
  refresh();
}

function renderQueues(queues) {
  const tbody = $('queues').tBodies[0];
  tbody.replaceChildren();
  for (const q of queues) {
    const tr = document.createElement('tr');
    tr.dataset.queue = q.name;
    cell(tr, q.name, 'name');
    cell(tr, fmtInt(q.partitions), 'partitions', q.partitions);
    cell(tr, fmtInt(q.messages), 'messages', q.messages);
    cell(tr, fmtInt(q.ready), 'ready', q.ready);
    cell(tr, fmtInt(q.delayed), 'delayed', q.delayed);
    cell(tr, fmtInt(q.in_flight), 'in_flight', q.in_flight);
    cell(tr, fmtInt(q.dead_letters), 'dead_letters', q.dead_letters);
    cell(tr, fmtRate(q.rates.publish), 'publish_rate', q.rates.publish);
    cell(tr, fmtRate(q.rates.deliver), 'deliver_rate', q.rates.deliver);
    cell(tr, fmtRate(q.rates.ack), 'ack_rate', q.rates.ack);
    const td = cell(tr, '');
    td.className = 'admin-only';
    if (q.can_admin) {
      const path = '/api/queues/' + encodeURIComponent(q.name);
      actionButton(td, 'Purge', () => act(path + '/purge', {},
        'Delete every ready and delayed message of ' + q.name + '?'), true);
      if (q.dead_letters > 0) {
        actionButton(td, 'Redrive', () => act(path + '/redrive', {},
          'Put the ' + q.dead_letters + ' dead letters of ' + q.name +
          ' back in it?'));
      }
    }
    tbody.appendChild(tr);
  }
  $('no-queues').hidden = queues.length > 0;
}

function renderGroups(groups, admin) {
  const tbody = $('groups').tBodies[0];
  tbody.replaceChildren();
  for (const g of groups) {
    const tr = document.createElement('tr');
    tr.dataset.queue = g.queue;
    tr.dataset.group = g.name;
    cell(tr, g.queue, 'queue');
    cell(tr, g.name, 'name');
    cell(tr, fmtInt(g.consumers), 'consumers', g.consumers);
    cell(tr, fmtInt(g.ready), 'ready', g.ready);
    cell(tr, fmtInt(g.in_flight), 'in_flight', g.in_flight);
    cell(tr, fmtInt(g.lag), 'lag', g.lag);
    const st = cell(tr, g.paused ? 'paused' : 'running', 'state');
    if (g.paused) st.className = 'paused';
    const td = cell(tr, '');
    td.className = 'admin-only';
    if (admin.has(g.queue)) {
      const path = '/api/queues/' + encodeURIComponent(g.queue) +
        '/groups/' + encodeURIComponent(g.name);
      if (g.paused) actionButton(td, 'Resume', () => act(path + '/resume'));
      else actionButton(td, 'Pause', () => act(path + '/pause'));
    }
    tbody.appendChild(tr);
  }
  $('no-groups').hidden = groups.length > 0;
}

function renderChart(history) {
  const canvas = $('chart');
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width;
  const h = canvas.clientHeight || canvas.height;
  canvas.width = w * ratio;
  canvas.height = h * ratio;
  const ctx = canvas.getContext('2d');
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, w, h);
  const style = getComputedStyle(document.documentElement);
  // Widest first: lines that coincide (a drained queue's) stay visible.
  const series = [['publish', style.getPropertyValue('--publish'), 5],
    ['deliver', style.getPropertyValue('--deliver'), 3],
    ['ack', style.getPropertyValue('--ack'), 1.5]];
  const slots = 120;
  let max = 1;
  for (const [name] of series) {
    for (const v of history[name]) max = Math.max(max, v);
  }
  const pad = { l: 56, r: 8, t: 8, b: 18 };
  const pw = w - pad.l - pad.r;
  const ph = h - pad.t - pad.b;
  ctx.strokeStyle = style.getPropertyValue('--line');
  ctx.fillStyle = style.getPropertyValue('--muted');
  ctx.font = '11px system-ui, sans-serif';
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = pad.t + ph - (ph * i) / 4;
    ctx.beginPath();
    ctx.moveTo(pad.l, y);
    ctx.lineTo(w - pad.r, y);
    ctx.stroke();
    ctx.fillText(fmtRate((max * i) / 4), 4, y + 4);
  }
  const minutes = (slots * history.interval_ms) / 60000;
  ctx.fillText('-' + minutes + ' min', pad.l, h - 4);
  ctx.fillText('now', w - pad.r - 22, h - 4);
  ctx.lineJoin = 'round';
  for (const [name, color, width] of series) {
    const values = history[name];
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.beginPath();
    values.forEach((v, i) => {
      const x = pad.l + (pw * (slots - values.length + i)) / (slots - 1);
      const y = pad.t + ph - (ph * v) / max;
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
    const last = values.length ? values[values.length - 1] : 0;
    $('rate-' + name).textContent = values.length ? fmtRate(last) + '/s' : '-';
  }
  $('chart-minutes').textContent = String(minutes);
}

// Cluster mode: the brokers, what each owns, and the controller; the
// section stays hidden on a broker on its own (404).
async function refreshCluster() {
  const { status, data } = await api('/api/cluster');
  $('cluster').hidden = status !== 200 || !data.brokers;
  if ($('cluster').hidden) return;
  $('cluster-name').textContent = data.cluster + ', seen from ' + data.broker +
    ', controller epoch ' + data.epoch;
  const tbody = $('brokers').tBodies[0];
  tbody.replaceChildren();
  for (const b of data.brokers) {
    const tr = document.createElement('tr');
    tr.dataset.broker = b.id;
    cell(tr, b.id, 'id');
    cell(tr, b.address, 'address');
    cell(tr, fmtInt(b.partitions), 'partitions', b.partitions);
    cell(tr, b.id === data.controller ? 'controller' : 'broker', 'role');
    tbody.appendChild(tr);
  }
}

function render(ov) {
  const s = ov.stats;
  $('broker').textContent = 'v' + ov.version + ', up ' +
    Math.floor(ov.uptime_ms / 60000) + ' min';
  for (const el of document.querySelectorAll('[data-stat]')) {
    const v = s[el.dataset.stat];
    el.dataset.value = String(v);
    el.textContent = el.dataset.unit === 'bytes' ? fmtBytes(v) : fmtInt(v);
  }
  const used = s.storage_limit_bytes ? s.storage_used_bytes / s.storage_limit_bytes : 0;
  const bar = $('storage-bar');
  bar.style.width = Math.min(100, used * 100).toFixed(1) + '%';
  bar.className = used > 0.8 ? 'high' : '';
  const admin = new Set(ov.queues.filter((q) => q.can_admin).map((q) => q.name));
  document.body.classList.toggle('can-admin', admin.size > 0);
  renderQueues(ov.queues);
  renderGroups(ov.groups, admin);
  renderChart(ov.history);
  document.body.dataset.rendered = String(Date.now());
}

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  try {
    const { status, data } = await api('/api/overview');
    if (status === 401) {
      showLogin(state.user ? 'Your session ended: log in again.' : '');
      return;
    }
    if (status !== 200) {
      setStatus('The broker answered ' + status + ': ' + (data.message || ''));
      return;
    }
    render(data);
    await refreshCluster();
    setStatus('Updated ' + new Date().toLocaleTimeString() + '.');
  } catch (e) {
    setStatus('Cannot reach the broker: ' + e.message);
  } finally {
    state.busy = false;
  }
}

function showLogin(message) {
  clearInterval(state.timer);
  state.timer = null;
  state.user = null;
  state.csrf = null;
  $('overview').hidden = true;
  $('logout').hidden = true;
  $('who').textContent = '';
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('login-user').focus();
}

function showOverview() {
  $('login').hidden = true;
  $('overview').hidden = false;
  $('logout').hidden = !state.user;
  $('who').textContent = state.user ? state.user.name
    : state.auth === 'off' ? 'auth off: read-only' : 'read-only';
  refresh();
  if (!state.timer) state.timer = setInterval(refresh, REFRESH_MS);
}

async function start() {
  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { user: $('login-user').value, password: $('login-password').value };
    const { status, data } = await api('/api/login', body);
    $('login-password').value = '';
    if (status !== 200) {
      $('login-error').textContent = data.message || 'Login failed.';
      return;
    }
    state.user = data.user;
    state.csrf = data.csrf;
    showOverview();
  });
  $('logout').addEventListener('click', async () => {
    await api('/api/logout', {});
    showLogin('Logged out.');
  });
  try {
    const { status, data } = await api('/api/session');
    if (status !== 200) {
      setStatus('The broker answered ' + status + ': ' + (data.message || ''));
      return;
    }
    state.auth = data.auth;
    state.user = data.user;
    state.csrf = data.csrf || null;
    if (data.auth === 'on' && !data.user) showLogin('');
    else showOverview();
  } catch (e) {
    setStatus('Cannot reach the broker: ' + e.message);
  }
}

start();

// The page of `cogvideox-fun serve`: CogVideoX-Fun's UI controls on the job API (POST /v1/jobs, events over SSE,
// DELETE to cancel, /result to play). No framework, no network access beyond this server.
'use strict';

const $ = (id) => document.getElementById(id);
const form = $('form');
let token = localStorage.getItem('cogvideox-fun-token') || '';
let current = null; // { id, source: EventSource }
let models = null;

// ---------------------------------------------------------------- API
async function api(path, opts = {}) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const headers = Object.assign({}, opts.headers || {});
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(path, Object.assign({}, opts, { headers }));
    if (res.status === 401 && attempt === 0) {
      const t = window.prompt('This server needs a token (cogvideox-fun serve --token):', '');
      if (t === null) break;
      token = t.trim();
      localStorage.setItem('cogvideox-fun-token', token);
      continue;
    }
    let body = null;
    const type = res.headers.get('content-type') || '';
    if (type.includes('json')) body = await res.json();
    return { ok: res.ok, status: res.status, body };
  }
  return { ok: false, status: 401, body: { error: 'a token is required' } };
}
const withToken = (url) => (token ? `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : url);

// ---------------------------------------------------------------- controls
const radio = (name) => (form.querySelector(`input[name="${name}"]:checked`) || {}).value;

function updateVisibility() {
  for (const el of document.querySelectorAll('[data-show]')) {
    const m = /^(\w+)(!?=)(\w+)$/.exec(el.dataset.show);
    const v = radio(m[1]);
    el.hidden = m[2] === '=' ? v !== m[3] : v === m[3];
  }
  const frames = $('frames');
  frames.max = radio('method') === 'long' ? '1344' : String(modelInfo().maxFrames || 85);
  updateOutputs();
}

function updateOutputs() {
  for (const o of document.querySelectorAll('output[for]')) {
    const input = $(o.htmlFor);
    if (input) o.textContent = input.value;
  }
}

function modelInfo() {
  if (!models) return {};
  const sel = $('model').value;
  return sel ? models.models.find((m) => m.path === sel) || models.current : models.current;
}

// ---------------------------------------------------------------- the demo model: what it knows
// /v1/models gives the demo model's demo.json (current.demoInfo) as `cogvideox-fun generate --help` lists it: a trained
// demo model is prompted like its examples at its own grid; without demo.json (or untrained) its output is noise.
let pagePrompt = null; // the prompt the page itself put in (the demo's example, a clicked example): replaceable

const fillTemplate = (t, c) => t.replace('{color}', c.color).replace('{shape}', c.shape).replace('{direction}', c.direction).replace('{background}', c.background);

/** A few prompts the trained demo model follows: its example, two more seen combinations, one held out of training. */
function demoExamples(d) {
  const held = new Set(d.held_out.map((h) => h.prompt));
  const out = [{ prompt: d.example_prompt, heldOut: false }];
  for (let i = 1; out.length < 3 && i <= d.colors.length * d.shapes.length; i++) {
    const at = (list, k) => list[k % list.length];
    const p = fillTemplate(d.prompt_template, { color: at(d.colors, i), shape: at(d.shapes, i), direction: at(d.directions, i + 1), background: at(d.backgrounds, i + 1) });
    if (!held.has(p) && !out.some((e) => e.prompt === p)) out.push({ prompt: p, heldOut: false });
  }
  if (d.held_out.length) out.push({ prompt: d.held_out[0].prompt, heldOut: true });
  return out;
}

function showDemoHelp(d) {
  $('demo-help').hidden = !d;
  const box = $('demo-examples');
  box.innerHTML = '';
  if (!d) return;
  $('demo-knows').textContent =
    `The demo model knows colours ${d.colors.join(', ')}; shapes ${d.shapes.join(', ')}; directions ${d.directions.join(', ')}; ` +
    `backgrounds ${d.backgrounds.join(', ')}. Prompt it as "${d.prompt_template}", e.g.:`;
  for (const e of demoExamples(d)) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = e.heldOut ? 'example held-out' : 'example';
    b.dataset.prompt = e.prompt;
    b.textContent = e.heldOut ? `${e.prompt} (held out)` : e.prompt;
    if (e.heldOut) b.title = 'never seen in training: the model composes it from what it learned';
    b.addEventListener('click', () => {
      $('prompt').value = pagePrompt = e.prompt;
      $('prompt').classList.remove('invalid');
    });
    box.append(b);
  }
}

// Steps and guidance start at what the server gives a job that names none (current.sampling; a model picked from the
// list: the page's own HTML defaults, the predict scripts'). Guidance follows the source too, since the demo model runs
// start images without it, until someone moves the slider.
let guidanceMoved = false;
function samplingOf(m) {
  const g = Number($('guidance').defaultValue);
  return m.sampling || { steps: Number($('steps').defaultValue), guidance: g, guidanceWithImage: g };
}
function applyGuidanceDefault() {
  if (guidanceMoved) return;
  const s = samplingOf(modelInfo());
  $('guidance').value = String(radio('source') === 'image' ? s.guidanceWithImage : s.guidance);
  updateOutputs();
}

function applyModelDefaults() {
  const m = modelInfo();
  const demo = m.demo || m.path === 'demo';
  const trained = demo && m.demoInfo && m.demoInfo.trained ? m.demoInfo : null;
  // CogVideoX-Fun's UI: 672×384, 49 frames; the demo model and THUDM models their own size (a trained demo: its grid)
  const fun = m.kind === 'fun-inp' && !demo;
  $('width').value = fun ? 672 : trained ? trained.output.width : m.defaultWidth;
  $('height').value = fun ? 384 : trained ? trained.output.height : m.defaultHeight;
  $('frames').max = String(m.maxFrames || 85);
  $('frames').value = String(Math.min(trained ? trained.output.frames : 49, m.maxFrames || 49));
  $('steps').value = String(samplingOf(m).steps);
  applyGuidanceDefault();
  $('model-note').textContent = !demo
    ? m.variant || ''
    : trained
      ? `demo model: tiny, trained on a toy world (one ${trained.shapes.join('/')} moving on a plain background)`
      : 'demo model: tiny random weights, the video is noise-like';
  showDemoHelp(trained);
  // the prompt follows the model while nobody has typed one: a trained demo's example, else the page's own default
  const p = $('prompt');
  if (p.value === p.defaultValue || p.value === pagePrompt) {
    p.value = trained ? trained.example_prompt : p.defaultValue;
    pagePrompt = trained ? p.value : null;
  }
  updateVisibility();
}

async function loadModels() {
  const r = await api('/v1/models');
  if (!r.ok) return showError(null, (r.body && r.body.error) || `cannot list models (${r.status})`);
  models = r.body;
  const sel = $('model');
  sel.innerHTML = '';
  const cur = document.createElement('option');
  cur.value = '';
  cur.textContent = models.current.demo ? 'demo model (bundled)' : `${models.current.path} (${models.current.variant})`;
  sel.append(cur);
  for (const m of models.models) {
    if (m.path === models.current.path) continue;
    const o = document.createElement('option');
    o.value = m.path;
    o.textContent = `${m.path} (${m.variant})`;
    sel.append(o);
  }
  const sampler = $('sampler');
  sampler.innerHTML = '';
  for (const s of models.samplers) {
    const o = document.createElement('option');
    o.value = o.textContent = s;
    sampler.append(o);
  }
  sampler.value = 'Euler'; // CogVideoX-Fun UI's default
  const lora = $('lora');
  for (const l of models.loras) {
    const o = document.createElement('option');
    o.value = o.textContent = l;
    lora.append(o);
  }
  $('backend').textContent = models.backend ? `backend: ${models.backend}` : '';
  applyModelDefaults();
}

// ---------------------------------------------------------------- errors next to their field
function clearErrors() {
  for (const e of document.querySelectorAll('.err')) e.textContent = '';
  for (const e of document.querySelectorAll('.invalid')) e.classList.remove('invalid');
}

function showError(field, message) {
  const slot = (field && document.querySelector(`.err[data-for="${field}"]`)) || document.querySelector('.err[data-for="_general"]');
  slot.textContent = message;
  const input = field && $(field);
  if (input) {
    input.classList.add('invalid');
    if (input.closest('[hidden]') === null) input.focus();
  }
  slot.scrollIntoView({ block: 'nearest' });
}

// ---------------------------------------------------------------- submit, progress, cancel
function buildForm() {
  const fd = new FormData();
  const set = (k, v) => fd.append(k, String(v));
  if ($('model').value) set('model', $('model').value);
  set('prompt', $('prompt').value);
  set('negativePrompt', $('negativePrompt').value);
  set('sampler', $('sampler').value);
  set('steps', $('steps').value);
  set('guidance', $('guidance').value);
  set('seed', $('seed').value.trim() === '' ? -1 : $('seed').value);
  if (radio('resize') === 'reference') set('resizeToReference', radio('base'));
  else {
    set('width', $('width').value);
    set('height', $('height').value);
  }
  const method = radio('method');
  if (method === 'image') set('frames', 1);
  else set('frames', $('frames').value);
  if (method === 'long') {
    set('longVideo', true);
    set('segment', $('segment').value);
    set('overlap', $('overlap').value);
  }
  const source = radio('source');
  const file = (id) => $(id).files && $(id).files[0];
  if (source === 'image') {
    if (!file('image')) throw Object.assign(new Error('choose a start image (or pick "Text to video")'), { field: 'image' });
    fd.append('image', file('image'));
    if (file('endImage')) fd.append('endImage', file('endImage'));
  } else if (source === 'video') {
    if (!file('video')) throw Object.assign(new Error('choose a video to convert'), { field: 'video' });
    fd.append('video', file('video'));
    if (file('mask')) fd.append('mask', file('mask'));
    set('strength', $('strength').value);
  }
  if ($('lora').value) set('lora', `${$('lora').value}:${$('loraWeight').value}`);
  return fd;
}

async function submit(ev) {
  if (ev) ev.preventDefault();
  clearErrors();
  let fd;
  try {
    fd = buildForm();
  } catch (e) {
    return showError(e.field, e.message);
  }
  $('generate').disabled = true;
  const r = await api('/v1/jobs', { method: 'POST', body: fd });
  $('generate').disabled = false;
  if (!r.ok) return showError(r.body && r.body.field, (r.body && r.body.error) || `error ${r.status}`);
  follow(r.body.id);
  loadHistory();
}

function setStatus(text, cls) {
  const s = $('status');
  s.textContent = text;
  s.className = cls || '';
}

function follow(id) {
  if (current) current.source.close();
  const source = new EventSource(withToken(`/v1/jobs/${id}/events`));
  current = { id, source };
  $('cancel').disabled = false;
  $('bar').value = 0;
  $('detail').textContent = '';
  setStatus('Submitted', 'state-running');
  const on = (type, fn) => source.addEventListener(type, (m) => fn(JSON.parse(m.data)));
  on('state', (info) => {
    if (info.state === 'queued') setStatus(`Queued: position ${info.position}`, 'state-running');
    if (info.state === 'running') setStatus(`Running: ${info.stage || ''}`, 'state-running');
    if (info.state === 'done') showResult(info);
  });
  on('queued', (e) => setStatus(`Queued: position ${e.position}`, 'state-running'));
  on('started', () => setStatus('Starting', 'state-running'));
  on('stage', (e) => setStatus(`${e.label[0].toUpperCase()}${e.label.slice(1)}…`, 'state-running'));
  on('segment', (e) => ($('detail').textContent = `long video: segment ${e.index + 1} of ${e.count}`));
  on('step', (e) => {
    $('bar').max = e.steps;
    $('bar').value = e.step;
    const sps = e.secondsPerStep !== undefined ? ` · ${e.secondsPerStep.toFixed(2)} s/step` : '';
    const eta = e.etaSeconds !== undefined ? ` · ETA ${e.etaSeconds.toFixed(1)} s` : '';
    $('detail').textContent = `step ${e.step}/${e.steps}${sps}${eta}`;
  });
  on('warning', (e) => ($('detail').textContent = e.message));
  const end = () => {
    source.close();
    if (current && current.id === id) current = null;
    $('cancel').disabled = true;
    loadHistory();
  };
  on('done', async (e) => {
    setStatus('Success', 'state-done');
    $('bar').value = $('bar').max;
    end();
    const r = await api(`/v1/jobs/${id}`);
    if (r.ok) showResult(r.body);
  });
  on('failed', (e) => {
    setStatus(`Error: ${e.error}`, 'state-failed');
    showError(null, e.error);
    end();
  });
  on('cancelled', () => {
    setStatus('Cancelled: nothing was written', 'state-cancelled');
    end();
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED && current && current.id === id) end();
  };
}

async function cancel() {
  if (!current) return;
  $('cancel').disabled = true;
  setStatus('Cancelling…', 'state-running');
  const r = await api(`/v1/jobs/${current.id}`, { method: 'DELETE' });
  if (!r.ok) showError(null, (r.body && r.body.error) || `cannot cancel (${r.status})`);
}

function showResult(info) {
  if (!info.result) return;
  const url = withToken(`${info.result.url}?t=${encodeURIComponent(info.finishedAt || '')}`);
  const v = $('result-video');
  const img = $('result-image');
  $('result-error').textContent = '';
  if (info.result.format === 'png') {
    v.hidden = true;
    v.removeAttribute('src');
    img.src = url;
    img.hidden = false;
  } else if (info.result.format === 'gif') {
    v.hidden = true;
    img.src = url;
    img.hidden = false;
  } else {
    img.hidden = true;
    v.src = url;
    v.hidden = false;
    v.play().catch(() => {});
  }
  const s = info.settings;
  $('result-info').innerHTML = '';
  const a = document.createElement('a');
  a.href = url;
  a.download = `${info.id}.${info.result.format}`;
  a.textContent = 'download';
  $('result-info').append(`${info.result.width}×${info.result.height}, ${info.result.frames} frame${info.result.frames === 1 ? '' : 's'} · ${s.sampler}, ${s.steps} steps, CFG ${s.guidance}, seed ${s.seed} · `, a);
}

// ---------------------------------------------------------------- history and re-run
function summary(s) {
  const size = s.width ? `${s.width}×${s.height}` : `ref ${s.resizeToReference}`;
  return `${size} · ${s.frames} f · ${s.steps} steps ${s.sampler} · CFG ${s.guidance} · seed ${s.seed}${s.inputs.length ? ` · ${s.inputs.join('+')}` : ''}${s.longVideo ? ' · long' : ''}`;
}

async function loadHistory() {
  const r = await api('/v1/jobs');
  if (!r.ok) return;
  const ol = $('history');
  ol.innerHTML = '';
  for (const j of r.body.jobs.slice(0, 100)) {
    const li = document.createElement('li');
    const p = document.createElement('div');
    p.className = 'p';
    p.title = j.settings.prompt;
    const st = document.createElement('span');
    st.className = `state-${j.state}`;
    st.textContent = j.state === 'queued' ? `queued #${j.position}` : j.state;
    p.append(st, ` ${j.settings.prompt}`);
    const s = document.createElement('div');
    s.className = 's';
    s.textContent = j.error ? `${summary(j.settings)} · ${j.error}` : summary(j.settings);
    const b = document.createElement('div');
    b.className = 'b';
    if (j.state === 'done') {
      const show = document.createElement('button');
      show.type = 'button';
      show.textContent = 'Show';
      show.onclick = () => showResult(j);
      b.append(show);
    }
    const rerun = document.createElement('button');
    rerun.type = 'button';
    rerun.textContent = 'Re-run';
    rerun.className = 'rerun';
    rerun.onclick = () => rerunJob(j);
    b.append(rerun);
    li.append(p, b, s);
    ol.append(li);
  }
}

async function setFileInput(input, url) {
  const res = await fetch(withToken(url));
  if (!res.ok) return false;
  const blob = await res.blob();
  const dt = new DataTransfer();
  dt.items.add(new File([blob], url.split('/').pop(), { type: blob.type }));
  input.files = dt.files;
  input.dispatchEvent(new Event('change'));
  return true;
}

async function rerunJob(j) {
  const s = j.settings;
  const check = (name, value) => {
    const el = form.querySelector(`input[name="${name}"][value="${value}"]`);
    if (el) el.checked = true;
  };
  $('model').value = s.model === 'demo' || s.model === models.current.path ? '' : s.model;
  $('prompt').value = s.prompt;
  $('negativePrompt').value = s.negativePrompt;
  $('sampler').value = s.sampler;
  $('steps').value = s.steps;
  $('guidance').value = s.guidance;
  guidanceMoved = true; // a rerun keeps its guidance
  $('seed').value = s.seed;
  if (s.resizeToReference) {
    check('resize', 'reference');
    check('base', String(s.resizeToReference));
  } else {
    check('resize', 'by');
    $('width').value = s.width;
    $('height').value = s.height;
  }
  check('method', s.longVideo ? 'long' : s.frames === 1 ? 'image' : 'video');
  $('frames').value = s.frames;
  if (s.segment) $('segment').value = s.segment;
  if (s.overlap) $('overlap').value = s.overlap;
  $('strength').value = s.strength;
  $('lora').value = s.lora.length ? s.lora[0].path : '';
  if (s.lora.length) $('loraWeight').value = s.lora[0].weight;
  for (const id of ['image', 'endImage', 'video', 'mask']) $(id).value = '';
  check('source', s.inputs.includes('video') ? 'video' : s.inputs.includes('image') ? 'image' : 'text');
  for (const name of s.inputs) await setFileInput($(name), `/v1/jobs/${j.id}/inputs/${name}`);
  updateVisibility();
  await submit();
}

// ---------------------------------------------------------------- wiring
form.addEventListener('submit', submit);
form.addEventListener('change', (e) => {
  if (e.target.name === 'method' || e.target.name === 'source' || e.target.name === 'resize') updateVisibility();
  if (e.target.name === 'source') applyGuidanceDefault();
  if (e.target.id === 'image') {
    const f = e.target.files[0];
    $('image-preview').src = f ? URL.createObjectURL(f) : '';
    if (!f) $('image-preview').removeAttribute('src');
  }
  e.target.classList.remove('invalid');
});
form.addEventListener('input', (e) => {
  if (e.target.id === 'guidance') guidanceMoved = true;
  updateOutputs();
});
// the model menu sits in the header, outside the form: the form's change listener never saw it
$('model').addEventListener('change', applyModelDefaults);
$('cancel').addEventListener('click', cancel);
// A browser that cannot decode the MP4 (H.264 baseline) would show an empty black box: say so, beside the download
// link. Firefox on Linux decodes H.264 only through the system's libavcodec (Debian's firefox-esr merely recommends it).
$('result-video').addEventListener('error', () => {
  const v = $('result-video');
  if (!v.getAttribute('src')) return;
  const why = v.error && v.error.message ? ` (${v.error.message})` : '';
  $('result-error').textContent =
    `This browser cannot play the MP4 (H.264)${why}: download it below. Firefox on Linux needs the system's libavcodec (e.g. install ffmpeg).`;
});
$('dice').addEventListener('click', () => ($('seed').value = String(1 + Math.floor(Math.random() * 1e8))));
loadModels().then(loadHistory);

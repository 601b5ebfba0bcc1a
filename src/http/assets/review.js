/*
 * The review pages' script (served as /static/review.js; the pages' CSP allows no inline script).
 * Plain ES2017 for every browser a reviewer may use, no build step. It adds, over a page that works without it:
 *  - boxes fitted to each image once it loads;
 *  - the label editor: classes from the ontology (exclusive groups enforced), attributes with their allowed
 *    values, boxes drawn, moved and resized on the image (pointer or keyboard), spans picked from the text,
 *    and "start from" the consensus or any annotator; it writes the JSON field the form submits;
 *  - drafts (labels, note) and a decision not yet recorded kept in this browser per task, so neither a
 *    refresh nor an ended session loses them; they are offered back on the task, never sent on their own;
 *  - keyboard shortcuts, ignored while typing in a field.
 */
(function () {
  'use strict';
  var dataEl = document.getElementById('task-data');
  var D = dataEl ? JSON.parse(dataEl.textContent) : null;

  function pixelUnits(boxes) {
    for (var i = 0; i < boxes.length; i++) if (boxes[i].x + boxes[i].w > 1.001 || boxes[i].y + boxes[i].h > 1.001) return true;
    return false;
  }
  function allBoxes() {
    var out = [];
    if (!D) return out;
    D.annotations.forEach(function (a) { (a.labels.boxes || []).forEach(function (b) { out.push(b); }); });
    ((D.consensus && D.consensus.boxes) || []).concat(D.dontCare || []).forEach(function (b) { out.push(b); });
    return out;
  }
  var PIXELS = pixelUnits(allBoxes());
  function fitBoxes(img) {
    var svgs = img.parentNode.querySelectorAll('svg');
    for (var i = 0; i < svgs.length; i++) svgs[i].setAttribute('viewBox', PIXELS ? '0 0 ' + img.naturalWidth + ' ' + img.naturalHeight : '0 0 1 1');
  }
  document.querySelectorAll('figure img').forEach(function (img) {
    if (img.complete && img.naturalWidth) fitBoxes(img); else img.addEventListener('load', function () { fitBoxes(img); });
  });

  // ---- drafts and decisions not yet recorded, per task, in this browser
  var params = new URLSearchParams(location.search);
  var done = params.get('done');
  function storeKey(id) { return 'qcflow:task:' + id; }
  function load(id) { try { return JSON.parse(localStorage.getItem(storeKey(id)) || 'null'); } catch (e) { return null; } }
  function save(id, v) { try { localStorage.setItem(storeKey(id), JSON.stringify(v)); } catch (e) { /* storage full or off: drafts are a convenience */ } }
  function forget(id) { try { localStorage.removeItem(storeKey(id)); } catch (e) { /* ignore */ } }
  if (done) forget(done);

  // The decision just made can be taken back until its window closes: a countdown, and the key u.
  var undoForm = document.getElementById('undo-form');
  if (undoForm) {
    var left = Number(undoForm.getAttribute('data-seconds'));
    var secs = document.getElementById('undo-seconds');
    var tick = setInterval(function () {
      left--;
      if (left <= 0) { clearInterval(tick); undoForm.hidden = true; } else secs.textContent = String(left);
    }, 1000);
    document.addEventListener('keydown', function (e) {
      var t = e.target;
      if (e.key !== 'u' || undoForm.hidden || e.ctrlKey || e.metaKey || e.altKey || (t && /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
      e.preventDefault();
      undoForm.submit();
    });
  }
  if (!D) return;
  if (D.decided) forget(D.taskId);
  if (!D.open) return;

  var form = document.getElementById('decide');
  var labelsField = document.getElementById('labels');
  var commentField = document.getElementById('comment');
  var correctBox = document.getElementById('correct-box');
  var editorEl = document.getElementById('editor');
  var restoredEl = document.getElementById('restored');
  var stored = load(D.taskId) || {};
  function persist(extra) {
    var v = { labels: labelsField.value, comment: commentField.value, touched: stored.touched, savedAt: new Date().toISOString() };
    if (extra) for (var k in extra) v[k] = extra[k];
    stored = v;
    save(D.taskId, v);
  }

  // ---- the editor's state: a Labels object
  var draft;
  try { draft = JSON.parse(labelsField.value); } catch (e) { draft = {}; }
  if (!D.refused && stored.touched && typeof stored.labels === 'string') {
    try { draft = JSON.parse(stored.labels); labelsField.value = stored.labels; } catch (e) { /* keep the server's */ }
  }
  if (!D.refused && typeof stored.comment === 'string' && !commentField.value) commentField.value = stored.comment;
  var selected = -1;
  var ontology = D.ontology || {};
  var classes = ontology.classes || [];
  var attrValues = ontology.attributes || {};

  function clone(x) { return JSON.parse(JSON.stringify(x)); }
  function el(tag, attrs, children) {
    var n = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === 'text') n.textContent = attrs[k];
      else if (k.slice(0, 2) === 'on') n.addEventListener(k.slice(2), attrs[k]);
      else if (attrs[k] !== undefined && attrs[k] !== false) n.setAttribute(k, attrs[k] === true ? '' : attrs[k]);
    }
    (children || []).forEach(function (c) { if (c) n.appendChild(c); });
    return n;
  }
  function round(v) { return PIXELS ? Math.round(v) : Math.round(v * 10000) / 10000; }
  function changed(rerender) {
    labelsField.value = JSON.stringify(draft, null, 2);
    persist({ touched: true });
    if (rerender !== false) render();
    else drawBoxes();
  }
  function startFrom(labels) {
    draft = clone(labels || {});
    selected = -1;
    changed();
  }

  function valueSelect(values, current, onchange, label) {
    var s = el('select', { 'aria-label': label, onchange: function () { onchange(s.value); } });
    s.appendChild(el('option', { value: '', text: '—' }));
    values.forEach(function (v) { s.appendChild(el('option', { value: String(v), text: String(v), selected: String(current) === String(v) })); });
    if (current !== undefined && values.map(String).indexOf(String(current)) < 0) s.appendChild(el('option', { value: String(current), text: String(current) + ' (not allowed)', selected: true }));
    return s;
  }
  function typed(v, like) { return typeof like === 'number' ? Number(v) : typeof like === 'boolean' ? v === 'true' : v; }
  /** Attributes keys worth offering for a kind of label: the ontology's, and any an annotator or the draft used. */
  function attributeKeys(pick) {
    var keys = Object.keys(attrValues);
    var seen = {};
    D.annotations.concat([{ labels: D.consensus || {} }, { labels: draft }]).forEach(function (a) {
      pick(a.labels).forEach(function (attrs) { Object.keys(attrs || {}).forEach(function (k) { seen[k] = true; }); });
    });
    Object.keys(seen).forEach(function (k) { if (keys.indexOf(k) < 0) keys.push(k); });
    return keys.filter(function (k) { return seen[k] || Object.keys(attrValues).length; });
  }
  function attributeSelects(attrs, keys, onset, prefix) {
    return keys.map(function (k) {
      var known = attrValues[k] || [];
      return el('label', {}, [document.createTextNode(k + ' '), valueSelect(known, attrs ? attrs[k] : undefined, function (v) { onset(k, v); }, prefix + k)]);
    });
  }

  function classesFieldset() {
    var used = D.annotations.some(function (a) { return a.labels.classes; }) || (D.consensus && D.consensus.classes) || draft.classes;
    if (!used && !classes.length) return null;
    var current = draft.classes || [];
    var fs = el('fieldset', { id: 'edit-classes' }, [el('legend', { text: ontology.multiLabel ? 'Classes' : 'Class' })]);
    var pool = classes.slice();
    current.forEach(function (c) { if (pool.indexOf(c) < 0) pool.push(c); });
    pool.forEach(function (c) {
      var input = el('input', {
        type: ontology.multiLabel ? 'checkbox' : 'radio', name: 'edit-class', value: c, checked: current.indexOf(c) >= 0,
        onchange: function () {
          var now = draft.classes || [];
          if (!ontology.multiLabel) now = [c];
          else if (input.checked) {
            // Exclusive groups: picking one class of a group drops the others of that group.
            var drop = {};
            (ontology.exclusive || []).forEach(function (g) { if (g.indexOf(c) >= 0) g.forEach(function (o) { if (o !== c) drop[o] = true; }); });
            now = now.filter(function (o) { return !drop[o] && o !== c; }).concat([c]);
          } else now = now.filter(function (o) { return o !== c; });
          draft.classes = now;
          changed();
        },
      });
      fs.appendChild(el('label', {}, [input, document.createTextNode(' ' + c + (classes.indexOf(c) < 0 ? ' (not in the ontology)' : ''))]));
    });
    return fs;
  }

  function attributesFieldset() {
    var keys = attributeKeys(function (l) { return [l.attributes]; });
    var used = D.annotations.some(function (a) { return a.labels.attributes; }) || (D.consensus && D.consensus.attributes) || draft.attributes;
    if (!used || !keys.length) return null;
    return el('fieldset', { id: 'edit-attributes' }, [el('legend', { text: 'Attributes' })].concat(attributeSelects(draft.attributes, keys, function (k, v) {
      draft.attributes = draft.attributes || {};
      if (v === '') delete draft.attributes[k]; else draft.attributes[k] = typed(v, (attrValues[k] || [])[0]);
      changed();
    }, 'attribute ')));
  }

  function boxesFieldset() {
    var used = D.annotations.some(function (a) { return a.labels.boxes; }) || draft.boxes || document.querySelector('figure img');
    if (!used) return null;
    var boxes = draft.boxes || [];
    var keys = attributeKeys(function (l) { return (l.boxes || []).map(function (b) { return b.attributes; }); });
    var boxKeys = keys.filter(function (k) { return D.annotations.some(function (a) { return (a.labels.boxes || []).some(function (b) { return b.attributes && k in b.attributes; }); }); });
    var fs = el('fieldset', { id: 'edit-boxes' }, [el('legend', { text: 'Boxes (drag on the image to draw one)' })]);
    boxes.forEach(function (b, i) {
      var coord = function (k) {
        return el('label', {}, [document.createTextNode(k + ' '), el('input', {
          type: 'number', step: PIXELS ? '1' : '0.001', value: String(b[k]), 'aria-label': 'box ' + (i + 1) + ' ' + k,
          onchange: function (e) { var v = Number(e.target.value); if (isFinite(v)) { b[k] = v; changed(false); } },
        })]);
      };
      var row = el('div', { class: 'row' + (i === selected ? ' selected' : ''), 'data-box': String(i), onclick: function () { if (selected !== i) { selected = i; highlight(); } } }, [
        el('strong', { text: 'Box ' + (i + 1) }),
        el('label', {}, [document.createTextNode('class '), valueSelect(classes.length ? classes : [b.class], b.class, function (v) { if (v) { b.class = v; changed(); } }, 'box ' + (i + 1) + ' class')]),
      ].concat(attributeSelects(b.attributes, boxKeys, function (k, v) {
        b.attributes = b.attributes || {};
        if (v === '') delete b.attributes[k]; else b.attributes[k] = v;
        if (!Object.keys(b.attributes).length) delete b.attributes;
        changed();
      }, 'box ' + (i + 1) + ' ')).concat([coord('x'), coord('y'), coord('w'), coord('h'),
        el('button', { type: 'button', text: 'Remove', onclick: function () { boxes.splice(i, 1); selected = -1; changed(); } })]));
      fs.appendChild(row);
    });
    if (!boxes.length) fs.appendChild(el('p', { class: 'muted', text: 'No boxes.' }));
    return fs;
  }

  var textEl = document.getElementById('sample-text');
  function spanOffsets() {
    var sel = window.getSelection();
    if (!textEl || !sel || sel.rangeCount === 0 || sel.isCollapsed) return null;
    var r = sel.getRangeAt(0);
    if (!textEl.contains(r.startContainer) || !textEl.contains(r.endContainer)) return null;
    var pre = document.createRange();
    pre.selectNodeContents(textEl);
    pre.setEnd(r.startContainer, r.startOffset);
    var start = pre.toString().length;
    return { start: start, end: start + r.toString().length };
  }
  // Outside the editor the text shows every span given, those not every annotator gave alike marked as
  // disputed with who gave which: in a long document the one entity in doubt is found by eye.
  function spansGiven() {
    var given = {};
    var keyOf = function (s) { return s.start + ':' + s.end + ':' + s.label; };
    D.annotations.forEach(function (a) {
      (a.labels.spans || []).forEach(function (s) { var k = keyOf(s); (given[k] = given[k] || { span: s, who: [] }).who.push(a.annotator); });
    });
    ((D.consensus && D.consensus.spans) || []).forEach(function (s) { var k = keyOf(s); given[k] = given[k] || { span: s, who: [] }; });
    return Object.keys(given).map(function (k) { var g = given[k]; return { start: g.span.start, end: g.span.end, label: g.span.label, who: g.who, disputed: g.who.length !== D.annotations.length }; });
  }
  function markSpans() {
    if (!textEl || D.text === null) return;
    var spans = (correctBox.open ? draft.spans : spansGiven()) || [];
    var cuts = [0, D.text.length];
    spans.forEach(function (s) { cuts.push(s.start, s.end); });
    cuts = cuts.filter(function (c, i) { return cuts.indexOf(c) === i && c >= 0 && c <= D.text.length; }).sort(function (a, b) { return a - b; });
    textEl.textContent = '';
    for (var i = 0; i + 1 < cuts.length; i++) {
      var a = cuts[i], b = cuts[i + 1];
      var inside = spans.filter(function (s) { return s.start <= a && s.end >= b; });
      var piece = D.text.slice(a, b);
      var disputed = inside.some(function (s) { return s.disputed; });
      var title = inside.map(function (s) { return s.label + (s.who && s.disputed ? ' (' + (s.who.join(', ') || 'consensus only') + ')' : ''); }).join('; ');
      textEl.appendChild(inside.length ? el('mark', { title: title, text: piece, class: disputed ? 'disputed' : undefined }) : document.createTextNode(piece));
    }
  }
  function spansFieldset() {
    var used = D.annotations.some(function (a) { return a.labels.spans; }) || draft.spans;
    if (!used || D.text === null) return null;
    var entities = ontology.entities || [];
    var fs = el('fieldset', { id: 'edit-spans' }, [el('legend', { text: 'Spans (select text in the sample, then Add)' })]);
    (draft.spans || []).forEach(function (s, i) {
      fs.appendChild(el('div', { class: 'row' }, [
        el('span', { text: '“' + D.text.slice(s.start, s.end) + '” ' + s.start + '–' + s.end }),
        entities.length ? valueSelect(entities, s.label, function (v) { if (v) { s.label = v; changed(); } }, 'span ' + (i + 1) + ' label')
          : el('input', { value: s.label, 'aria-label': 'span ' + (i + 1) + ' label', onchange: function (e) { s.label = e.target.value; changed(); } }),
        el('button', { type: 'button', text: 'Remove', onclick: function () { draft.spans.splice(i, 1); changed(); } }),
      ]));
    });
    var label = entities.length ? valueSelect(entities, entities[0], function () {}, 'new span label') : el('input', { placeholder: 'label', 'aria-label': 'new span label' });
    fs.appendChild(el('div', { class: 'row' }, [label, el('button', {
      type: 'button', id: 'add-span', text: 'Add the selected text',
      onclick: function () {
        var o = spanOffsets();
        if (!o || !label.value) return;
        draft.spans = (draft.spans || []).concat([{ start: o.start, end: o.end, label: label.value }]).sort(function (a, b) { return a.start - b.start; });
        changed();
      },
    })]));
    return fs;
  }

  function startButtons() {
    var row = el('div', { class: 'start' }, [el('span', { text: 'Start from: ' })]);
    if (D.consensus) row.appendChild(el('button', { type: 'button', id: 'from-consensus', text: 'consensus (0)', onclick: function () { startFrom(D.consensus); } }));
    D.annotations.forEach(function (a, i) {
      if (i < 9) row.appendChild(el('button', { type: 'button', 'data-from': String(i + 1), text: a.annotator + ' (' + (i + 1) + ')', onclick: function () { startFrom(a.labels); } }));
    });
    return row;
  }

  // ---- boxes on the image
  var figure = document.querySelector('figure');
  var draftSvg = null;
  var NS = 'http://www.w3.org/2000/svg';
  function svgEl(tag, attrs) { var n = document.createElementNS(NS, tag); for (var k in attrs) n.setAttribute(k, attrs[k]); return n; }
  if (figure) {
    draftSvg = svgEl('svg', { class: 'draft', preserveAspectRatio: 'none', tabindex: '0', role: 'application', 'aria-label': 'Box editor: drag to draw a box, drag a box to move it, its corners to resize it; arrow keys move the selected box' });
    draftSvg.style.display = 'none';
    figure.appendChild(draftSvg);
    var img = figure.querySelector('img');
    var setVb = function () { draftSvg.setAttribute('viewBox', PIXELS ? '0 0 ' + img.naturalWidth + ' ' + img.naturalHeight : '0 0 1 1'); };
    if (img.complete && img.naturalWidth) setVb(); else img.addEventListener('load', setVb);
  }
  function handleSize() {
    var vb = draftSvg.viewBox.baseVal;
    var w = draftSvg.getBoundingClientRect().width || 1;
    return (vb && vb.width ? vb.width : 1) * 10 / w;
  }
  function drawBoxes() {
    if (!draftSvg) return;
    draftSvg.textContent = '';
    var hs = handleSize();
    (draft.boxes || []).forEach(function (b, i) {
      draftSvg.appendChild(svgEl('rect', { class: 'box' + (i === selected ? ' selected' : ''), x: b.x, y: b.y, width: b.w, height: b.h, 'stroke-width': 2, 'vector-effect': 'non-scaling-stroke', 'data-box': i }));
      if (i === selected) {
        [[0, 0], [1, 0], [0, 1], [1, 1]].forEach(function (c) {
          draftSvg.appendChild(svgEl('rect', { class: 'handle', x: b.x + c[0] * b.w - hs / 2, y: b.y + c[1] * b.h - hs / 2, width: hs, height: hs, 'stroke-width': 1.5, 'vector-effect': 'non-scaling-stroke', 'data-box': i, 'data-corner': c.join(',') }));
        });
      }
    });
  }
  function highlight() {
    drawBoxes();
    document.querySelectorAll('#edit-boxes .row').forEach(function (r) { r.classList.toggle('selected', Number(r.getAttribute('data-box')) === selected); });
  }
  function point(e) {
    var p = draftSvg.createSVGPoint();
    p.x = e.clientX; p.y = e.clientY;
    return p.matrixTransform(draftSvg.getScreenCTM().inverse());
  }
  var drag = null;
  if (draftSvg) {
    draftSvg.addEventListener('pointerdown', function (e) {
      var t = e.target, p = point(e);
      draftSvg.setPointerCapture(e.pointerId);
      draftSvg.focus();
      draft.boxes = draft.boxes || [];
      if (t.hasAttribute('data-corner')) {
        var i = Number(t.getAttribute('data-box')), c = t.getAttribute('data-corner').split(',').map(Number), b = draft.boxes[i];
        // The opposite corner stays put while this one follows the pointer.
        drag = { kind: 'size', box: i, fx: c[0] ? b.x : b.x + b.w, fy: c[1] ? b.y : b.y + b.h };
      } else if (t.hasAttribute('data-box')) {
        selected = Number(t.getAttribute('data-box'));
        var bb = draft.boxes[selected];
        drag = { kind: 'move', box: selected, dx: p.x - bb.x, dy: p.y - bb.y };
        highlight();
      } else {
        var cls = (draft.classes && draft.classes[0]) || classes[0] || 'object';
        draft.boxes.push({ x: round(p.x), y: round(p.y), w: 0, h: 0, class: cls });
        selected = draft.boxes.length - 1;
        drag = { kind: 'size', box: selected, fx: p.x, fy: p.y, fresh: true };
      }
      e.preventDefault();
    });
    draftSvg.addEventListener('pointermove', function (e) {
      if (!drag) return;
      var p = point(e), b = draft.boxes[drag.box];
      if (drag.kind === 'move') { b.x = round(p.x - drag.dx); b.y = round(p.y - drag.dy); } else {
        b.x = round(Math.min(p.x, drag.fx)); b.y = round(Math.min(p.y, drag.fy));
        b.w = round(Math.abs(p.x - drag.fx)); b.h = round(Math.abs(p.y - drag.fy));
      }
      drawBoxes();
    });
    var finish = function () {
      if (!drag) return;
      var b = draft.boxes[drag.box];
      // A click on the image, not a drag: no box.
      if (drag.fresh && (b.w < handleSize() || b.h < handleSize())) { draft.boxes.splice(drag.box, 1); selected = -1; }
      drag = null;
      changed();
    };
    draftSvg.addEventListener('pointerup', finish);
    draftSvg.addEventListener('pointercancel', finish);
  }

  function render() {
    editorEl.textContent = '';
    [startButtons(), classesFieldset(), attributesFieldset(), boxesFieldset(), spansFieldset()].forEach(function (n) { if (n) editorEl.appendChild(n); });
    drawBoxes();
    markSpans();
  }
  function editing(on) {
    if (draftSvg) draftSvg.style.display = on ? '' : 'none';
    if (figure) figure.classList.toggle('editing', on);
    markSpans();
  }
  correctBox.addEventListener('toggle', function () { editing(correctBox.open); if (correctBox.open) drawBoxes(); });
  labelsField.addEventListener('input', function () {
    try {
      var v = JSON.parse(labelsField.value);
      if (v && typeof v === 'object' && !Array.isArray(v)) { draft = v; selected = -1; render(); }
      labelsField.setCustomValidity('');
    } catch (e) { labelsField.setCustomValidity('not valid JSON: ' + e.message); }
    persist({ touched: true });
  });
  commentField.addEventListener('input', function () { persist(); });
  render();
  editing(correctBox.open);

  // A decision leaves this page only when the server answers; until then it is kept here, so an ended
  // session or a lost connection cannot drop it silently.
  form.addEventListener('submit', function (e) {
    var b = e.submitter;
    persist({ pending: b ? b.value : 'approve', touched: stored.touched || (b && b.value === 'correct') });
  });

  if (stored.pending && !D.refused) {
    restoredEl.hidden = false;
    restoredEl.setAttribute('role', 'alert');
    restoredEl.appendChild(el('strong', { text: 'Your decision “' + stored.pending + '” was not recorded' }));
    restoredEl.appendChild(document.createTextNode(' (it did not reach the server; e.g. your session ended). Your labels and note are back in place. '));
    var again = el('button', { type: 'button', id: 'resend', text: 'Record “' + stored.pending + '” now', onclick: function () { var b = document.getElementById(stored.pending === 'correct' ? 'correct' : stored.pending); if (b) b.click(); } });
    restoredEl.appendChild(again);
    restoredEl.appendChild(el('button', { type: 'button', text: 'Discard', onclick: function () { persist({ pending: undefined }); restoredEl.hidden = true; } }));
    if (stored.pending === 'correct') correctBox.open = true;
    again.focus();
  } else if ((stored.touched || stored.comment) && !D.refused) {
    restoredEl.hidden = false;
    restoredEl.setAttribute('role', 'status');
    restoredEl.textContent = 'Your unsent ' + (stored.touched ? 'labels and note were' : 'note was') + ' restored from this browser.';
    if (stored.touched) correctBox.open = true;
  }

  function nudge(e) {
    var b = draft.boxes && draft.boxes[selected];
    if (!b) return false;
    var step = (PIXELS ? 1 : 0.002) * (e.shiftKey ? 10 : 1);
    var d = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[e.key];
    if (!d) return false;
    if (e.altKey) { b.w = round(Math.max(step, b.w + d[0])); b.h = round(Math.max(step, b.h + d[1])); } else { b.x = round(b.x + d[0]); b.y = round(b.y + d[1]); }
    changed();
    return true;
  }

  document.addEventListener('keydown', function (e) {
    var t = e.target;
    var typing = t && (t.tagName === 'TEXTAREA' || t.tagName === 'INPUT' || t.tagName === 'SELECT');
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && correctBox.open) { e.preventDefault(); document.getElementById('correct').click(); return; }
    if (typing) {
      // Enter in a field would submit the form with its first button — an approval nobody meant.
      if (e.key === 'Enter' && t.tagName !== 'TEXTAREA' && form.contains(t)) { e.preventDefault(); t.blur(); }
      if (e.key === 'Escape') t.blur();
      return;
    }
    if (correctBox.open && (e.key.indexOf('Arrow') === 0) && selected >= 0 && (t === draftSvg || t === document.body)) { if (nudge(e)) e.preventDefault(); return; }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (correctBox.open && (e.key === 'Delete' || e.key === 'Backspace') && selected >= 0) { e.preventDefault(); draft.boxes.splice(selected, 1); selected = -1; changed(); return; }
    if (correctBox.open && /^[0-9]$/.test(e.key)) {
      var n = Number(e.key);
      if (n === 0 && D.consensus) { e.preventDefault(); startFrom(D.consensus); } else if (n > 0 && D.annotations[n - 1]) { e.preventDefault(); startFrom(D.annotations[n - 1].labels); }
      return;
    }
    var go = function (id) { var b = document.getElementById(id); if (b) { e.preventDefault(); b.click(); } };
    if (e.key === 'a') go('approve'); else if (e.key === 'r') go('reject'); else if (e.key === 's') go('resample');
    else if (e.key === 'c') {
      e.preventDefault();
      correctBox.open = true;
      var first = editorEl.querySelector('input,select,button');
      if (first) first.focus();
    } else if (e.key === 'q') { e.preventDefault(); location.href = '/queue'; }
  });
})();

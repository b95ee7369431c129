// Activation heatmap of report.html (inlined by bptt.report). Reads the JSON data block with
// id "heatmap-data": the passage text, and per layer the activations of every unit,
// quantized to int8 (value * 127), base64, unit-major (H, T). Colours character t by h_t.
"use strict";
(function () {
  const dataEl = document.getElementById("heatmap-data");
  if (!dataEl) return;
  const data = JSON.parse(dataEl.textContent);
  const chars = Array.from(data.text);             // code points, like Python's str
  const T = chars.length;
  const passage = document.getElementById("passage");
  const select = document.getElementById("unit");
  const readout = document.getElementById("readout");
  const items = Array.from(document.querySelectorAll("#units li.unit"));

  const acts = data.layers.map(function (b64) {
    const bin = atob(b64);
    const a = new Int8Array(bin.length);
    for (let i = 0; i < bin.length; i++) a[i] = bin.charCodeAt(i);   // 0..255 wraps to int8
    return a;
  });

  const frag = document.createDocumentFragment();
  const spans = chars.map(function (ch, t) {
    const s = document.createElement("span");
    s.textContent = ch;
    s.dataset.t = t;
    frag.appendChild(s);
    return s;
  });
  passage.appendChild(frag);

  // Diverging colours: -1 blue, 0 white, +1 red.
  const NEG = [67, 147, 195], POS = [214, 96, 77];
  function colour(v) {
    const end = v < 0 ? NEG : POS, a = Math.min(Math.abs(v), 1);
    const c = end.map(function (e) { return Math.round(255 + (e - 255) * a); });
    return "rgb(" + c.join(",") + ")";
  }

  let current = null;
  function value(t) {
    return acts[current[0]][current[1] * T + t] / 127;
  }
  function show(key) {
    const parts = key.split(":").map(Number);
    if (parts.length !== 2 || !(parts[0] in acts)) return;
    current = parts;
    for (let t = 0; t < T; t++) spans[t].style.backgroundColor = colour(value(t));
    if (select.value !== key) select.value = key;
    items.forEach(function (li) { li.classList.toggle("selected", li.dataset.unit === key); });
    readout.textContent = "layer " + parts[0] + ", unit " + parts[1];
  }

  select.addEventListener("change", function () { show(select.value); });
  items.forEach(function (li) {
    li.addEventListener("click", function () { show(li.dataset.unit); });
    li.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); show(li.dataset.unit); }
    });
  });
  passage.addEventListener("mouseover", function (e) {
    const t = e.target.dataset ? e.target.dataset.t : undefined;
    if (t === undefined || current === null) return;
    readout.textContent = "layer " + current[0] + ", unit " + current[1] + ": h[" + t + "] = " +
      value(Number(t)).toFixed(2) + "  (" + JSON.stringify(chars[t]) + ")";
  });
  show(select.value);
})();

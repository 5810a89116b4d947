// A small line chart on a canvas: cumulative tokens (y) against seconds since the request (x).
// Each series is { label, color, points: [[ms, tokens], ...], step } (step: draw as a staircase).

const PAD = { left: 34, right: 8, top: 18, bottom: 20 };

export function drawChart(canvas, series) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);

  const all = series.flatMap((s) => s.points);
  const maxT = Math.max(1, ...all.map(([t]) => t));
  const maxY = Math.max(1, ...all.map(([, y]) => y));
  const x = (t) => PAD.left + (t / maxT) * (width - PAD.left - PAD.right);
  const y = (v) => height - PAD.bottom - (v / maxY) * (height - PAD.top - PAD.bottom);
  const styles = getComputedStyle(canvas);

  ctx.strokeStyle = styles.getPropertyValue("--axis") || "#889";
  ctx.fillStyle = styles.getPropertyValue("--axis") || "#889";
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(PAD.left, PAD.top);
  ctx.lineTo(PAD.left, height - PAD.bottom);
  ctx.lineTo(width - PAD.right, height - PAD.bottom);
  ctx.stroke();
  ctx.font = "10px system-ui, sans-serif";
  ctx.textAlign = "right";
  ctx.fillText(String(maxY), PAD.left - 4, PAD.top + 4);
  ctx.fillText("0", PAD.left - 4, height - PAD.bottom);
  ctx.textAlign = "center";
  ctx.fillText(`${(maxT / 1000).toFixed(2)} s`, width - PAD.right - 16, height - 6);
  ctx.fillText("tokens", PAD.left + 14, PAD.top - 6);

  let legendX = width - PAD.right;
  ctx.textAlign = "right";
  for (const s of [...series].reverse()) {
    ctx.fillStyle = s.color;
    ctx.fillText(s.label, legendX, PAD.top - 6);
    legendX -= ctx.measureText(s.label).width + 12;
  }

  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    s.points.forEach(([t, v], i) => {
      if (i === 0) ctx.moveTo(x(t), y(v));
      else {
        if (s.step) ctx.lineTo(x(t), y(s.points[i - 1][1]));
        ctx.lineTo(x(t), y(v));
      }
    });
    ctx.stroke();
  }
  canvas.dataset.points = String(series.reduce((sum, s) => sum + s.points.length, 0));
}

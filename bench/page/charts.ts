/**
 * The app's charts, drawn by Chart.js (registered piece by piece so the bundle carries only what
 * is used). Every chart sits in a fixed-height box and resizes with it, so the page works from
 * phone to desktop widths. Colours are fixed per run, so a run looks the same in every chart.
 */
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  LogarithmicScale,
  PointElement,
  ScatterController,
  Title,
  Tooltip,
  type ChartConfiguration,
  type Plugin,
  type TooltipItem,
} from 'chart.js';
import { el } from './ui.js';

Chart.register(
  BarController,
  BarElement,
  CategoryScale,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  LogarithmicScale,
  PointElement,
  ScatterController,
  Title,
  Tooltip,
);
Chart.defaults.animation = false;
Chart.defaults.maintainAspectRatio = false;
Chart.defaults.font.family = 'system-ui, sans-serif';
// Small legend boxes and, in narrow charts (phones), smaller legend text, so the legend does
// not eat the plot.
Chart.defaults.plugins.legend.labels.boxWidth = 14;
Chart.defaults.plugins.legend.labels.font = ({ chart }) => ({ size: chart.width < 480 ? 11 : 12 });

/** A colour from the page's CSS (style.css), which follows the light or dark scheme. */
function cssColour(name: string, fallback: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

/**
 * Text and grid colours from the page's scheme (Chart.js defaults to dark grey on any page), as
 * each chart is made: a scheme switched later applies to the charts drawn after it.
 */
function applyScheme(): void {
  Chart.defaults.color = cssColour('--muted', '#666');
  Chart.defaults.borderColor = cssColour('--line', 'rgba(0,0,0,0.1)');
}

/** One colour per series name (runs, kernels), the same in every chart. */
export const COLOURS: Record<string, string> = {
  teacher: '#7f7f7f',
  dispatches: '#8c564b',
  optimizer: '#bcbd22',
  fused: '#d62728',
  distilledFused: '#d62728',
  stock: '#1f77b4',
  distilledStock: '#1f77b4',
  scratch: '#2ca02c',
  ceiling: '#9467bd',
  'fused (GPU clock)': '#ff9896',
  'stock (GPU clock)': '#aec7e8',
};

export function colour(name: string): string {
  return COLOURS[name] ?? '#8c564b';
}

/** A chart in a sized box appended to `parent`; returns the chart (destroy it to remove). */
export function addChart(parent: HTMLElement, config: ChartConfiguration): Chart {
  const canvas = el('canvas');
  const box = el('div', { class: 'chart' }, canvas);
  parent.append(box);
  applyScheme();
  return new Chart(canvas, config);
}

/** Lines over steps, one per named series (e.g. the four runs' losses). */
export function lineChart(
  parent: HTMLElement,
  title: string,
  yLabel: string,
  series: { name: string; label: string; points: { x: number; y: number }[] }[],
): Chart<'line'> {
  return addChart(parent, {
    type: 'line',
    data: {
      datasets: series.map((s) => ({
        label: s.label,
        data: s.points,
        borderColor: colour(s.name),
        backgroundColor: colour(s.name),
        borderWidth: 1.5,
        pointRadius: 0,
        parsing: false,
      })),
    },
    options: {
      plugins: { title: { display: true, text: title } },
      scales: {
        x: { type: 'linear', title: { display: true, text: 'step' } },
        y: { title: { display: true, text: yLabel } },
      },
    },
  } as ChartConfiguration) as Chart<'line'>;
}

/** Appends a point to the series labelled `label` of a line chart and redraws lazily. */
export function pushPoint(chart: Chart<'line'>, label: string, x: number, y: number): void {
  const ds = chart.data.datasets.find((d) => d.label === label);
  if (!ds) return;
  (ds.data as { x: number; y: number }[]).push({ x, y });
  chart.update('none');
}

/** A spread as the charts use it. */
type SpreadLike = { p20: number; p50: number; p80: number };

/**
 * Whiskers from p20 to p80 on every bar of a dataset that carries `spreads` (see
 * {@link spreadChart}): Chart.js has no error bars of its own.
 */
const spreadWhiskers: Plugin<'bar'> = {
  id: 'spreadWhiskers',
  afterDatasetsDraw(chart) {
    const { ctx } = chart;
    const y = chart.scales.y;
    if (!y) return;
    const whiskerColour = cssColour('--fg', 'rgba(0,0,0,0.75)');
    chart.data.datasets.forEach((ds, i) => {
      const spreads = (ds as { spreads?: (SpreadLike | null)[] }).spreads;
      const meta = chart.getDatasetMeta(i);
      if (!spreads || meta.hidden) return;
      meta.data.forEach((bar, j) => {
        const s = spreads[j];
        if (!s) return;
        const x = bar.x;
        const [top, bottom] = [y.getPixelForValue(s.p80), y.getPixelForValue(s.p20)];
        ctx.save();
        ctx.strokeStyle = whiskerColour;
        ctx.lineWidth = 1.5;
        ctx.beginPath();
        ctx.moveTo(x, top);
        ctx.lineTo(x, bottom);
        ctx.moveTo(x - 4, top);
        ctx.lineTo(x + 4, top);
        ctx.moveTo(x - 4, bottom);
        ctx.lineTo(x + 4, bottom);
        ctx.stroke();
        ctx.restore();
      });
    });
  },
};

/**
 * Medians as bars with p20–p80 whiskers, per category; `log` for values that span decades
 * (fused vs stock).
 */
export function spreadChart(
  parent: HTMLElement,
  title: string,
  yLabel: string,
  categories: string[],
  series: { name: string; label: string; values: (SpreadLike | null)[] }[],
  log = false,
): Chart {
  return addChart(parent, {
    type: 'bar',
    data: {
      labels: categories,
      datasets: series.map((s) => ({
        label: s.label,
        data: s.values.map((v) => (v ? v.p50 : null)) as number[],
        backgroundColor: colour(s.name),
        spreads: s.values,
      })),
    },
    options: {
      plugins: {
        title: { display: true, text: [title, 'bars: median, whiskers: p20–p80'] },
        tooltip: {
          callbacks: {
            label: (item: TooltipItem<'bar'>) => {
              const v = series[item.datasetIndex]?.values[item.dataIndex];
              return v
                ? `${item.dataset.label}: ${v.p50.toPrecision(4)} [${v.p20.toPrecision(3)}–${v.p80.toPrecision(3)}]`
                : '';
            },
          },
        },
      },
      scales: {
        y: { type: log ? 'logarithmic' : 'linear', title: { display: true, text: yLabel } },
      },
    },
    plugins: [spreadWhiskers],
  } as unknown as ChartConfiguration);
}

/** Per-window samples of several runs as points, one column per run (a strip plot). */
export function stripChart(
  parent: HTMLElement,
  title: string,
  yLabel: string,
  series: { name: string; label: string; samples: number[] }[],
): Chart {
  const labels = series.map((s) => s.label);
  return addChart(parent, {
    type: 'scatter',
    data: {
      datasets: series.map((s, i) => ({
        label: s.label,
        // Deterministic jitter inside the column: the point's rank spreads it sideways.
        data: s.samples.map((y, k) => ({ x: i + ((k % 7) - 3) * 0.05, y })),
        backgroundColor: colour(s.name),
        pointRadius: 3,
      })),
    },
    options: {
      plugins: { title: { display: true, text: title } },
      scales: {
        x: {
          type: 'linear',
          min: -0.5,
          max: series.length - 0.5,
          // One tick per run, at the column's centre (the range's ends are half-integers).
          afterBuildTicks: (axis: { ticks: { value: number }[] }) => {
            axis.ticks = labels.map((_, i) => ({ value: i }));
          },
          ticks: { callback: (v) => labels[Number(v)] ?? '' },
        },
        y: { title: { display: true, text: yLabel } },
      },
    },
  } as ChartConfiguration);
}

/** Plain bars (e.g. dispatches per step), or stacked bars when `stacked`. */
export function barChart(
  parent: HTMLElement,
  title: string,
  yLabel: string,
  categories: string[],
  series: { name: string; label: string; values: (number | null)[]; colours?: string[] }[],
  stacked = false,
): Chart {
  return addChart(parent, {
    type: 'bar',
    data: {
      labels: categories,
      datasets: series.map((s) => ({
        label: s.label,
        data: s.values as number[],
        backgroundColor: s.colours ?? colour(s.name),
      })),
    },
    options: {
      plugins: { title: { display: true, text: title }, legend: { display: series.length > 1 } },
      scales: {
        x: { stacked },
        y: { stacked, title: { display: true, text: yLabel } },
      },
    },
  } as ChartConfiguration);
}

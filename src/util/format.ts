/** Human-readable numbers for logs, progress bars and CLI summaries. */

/** 4399104 -> "4,399,104" (integers are rounded; the separator does not depend on the locale). */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const sign = n < 0 ? '-' : '';
  const digits = String(Math.round(Math.abs(n)));
  return sign + digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** 1536 -> "1.5 KiB", 4.2e9 -> "3.9 GiB" (binary units, like file sizes on disk). */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const sign = bytes < 0 ? '-' : '';
  if (unit === 0) return `${sign}${Math.round(value)} B`;
  return `${sign}${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/** Seconds -> "850ms", "42.0s", "3m05s", "2h07m", "3d04h". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 0) return `-${formatDuration(-seconds)}`;
  if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  if (seconds < 59.95) return `${seconds.toFixed(1)}s`;
  const total = Math.round(seconds);
  const pad = (v: number) => String(v).padStart(2, '0');
  if (total < 3600) return `${Math.floor(total / 60)}m${pad(total % 60)}s`;
  if (total < 86400) return `${Math.floor(total / 3600)}h${pad(Math.floor((total % 3600) / 60))}m`;
  return `${Math.floor(total / 86400)}d${pad(Math.floor((total % 86400) / 3600))}h`;
}

/** Compact magnitude with SI suffix: 1234 -> "1.23k", 5.6e6 -> "5.60M", 12 -> "12.0". */
export function formatSi(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const suffixes = ['', 'k', 'M', 'G', 'T'];
  let value = Math.abs(n);
  let i = 0;
  while (value >= 999.5 && i < suffixes.length - 1) {
    value /= 1000;
    i++;
  }
  const digits = value >= 99.95 ? 0 : value >= 9.995 ? 1 : 2;
  return `${n < 0 ? '-' : ''}${value.toFixed(digits)}${suffixes[i]}`;
}

/** Rate with a unit: formatRate(1234.5, 'tok') -> "1.23k tok/s"; slow rates switch to s/unit. */
export function formatRate(perSecond: number, unit = 'it'): string {
  if (!Number.isFinite(perSecond) || perSecond <= 0) return `? ${unit}/s`;
  if (perSecond < 0.1) return `${formatDuration(1 / perSecond)}/${unit}`;
  return `${formatSi(perSecond)} ${unit}/s`;
}

/** Short float for loss / lr fields: 0.000123 -> "1.23e-4", 2e-4 -> "2e-4", 2.345678 -> "2.346". */
export function formatFloat(x: number, significant = 4): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return '0';
  const abs = Math.abs(x);
  if (abs < 1e-3 || abs >= 1e6) {
    // Trailing mantissa zeros go: learning rates read 2e-4, not 2.000e-4.
    return x
      .toExponential(significant - 1)
      .replace(/\.?0+e/, 'e')
      .replace('e+', 'e');
  }
  return String(Number(x.toPrecision(significant)));
}

/** An argument as a POSIX shell reads it back unchanged: bare when safe, else single-quoted. */
export function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

#!/usr/bin/env python3
"""breakdown.py OUTDIR [polite|quiet] - the stages of the client's calls
recorded by trace.sh: the daemon's records joined with the client's by
session key, each stage's p50/p90/p99/mean in microseconds, and its mean
over the calls at or past the p90 and the p99 of the total; then the
processes' CPU time and run-queue wait (schedstat) over the client's run."""
import statistics as st
import sys

d = sys.argv[1]
which = sys.argv[2] if len(sys.argv) > 2 else 'polite'


def load(f):
    lines = open(f).read().split('\n')
    hdr = lines[0].split()
    return [dict(zip(hdr, l.split())) for l in lines[1:] if l.strip()]


def pct(a, p):
    return a[min(len(a) - 1, int(p * len(a)))]


daemon = {int(r['key']): r for r in load(f'{d}/daemon.pt')}
client = load(f'{d}/{which}.pt')  # the client's rows: read = sent, handle = answered
stages = [
    ('client send -> daemon read', 'c_sent', 'read'),
    ('hand-off to handler', 'read', 'handle'),
    ('admission', 'handle', 'admitted'),
    ('key, in-flight, breaker', 'admitted', 'callstart'),
    ('mux write', 'callstart', 'muxwritten'),
    ('-> simulator read', 'muxwritten', 'simread'),
    ('simulator batch, to flush', 'simread', 'simflush0'),
    ('sim flush -> mux reader', 'simflush0', 'muxreply'),
    ('mux reader -> caller', 'muxreply', 'callend'),
    ('index, answer frame', 'callend', 'answered'),
    ('front-end write', 'answered', 'written'),
    ('daemon write -> client done', 'written', 'c_done'),
]
J = []
for c in client:
    k = int(c['key'])
    if k == 0 or k not in daemon:
        continue
    r = dict(daemon[k])
    r['c_sent'], r['c_done'] = c['read'], c['handle']
    if all(int(r[s]) != 0 for s in ('muxwritten', 'simread', 'muxreply')):
        J.append(r)
T = lambda r, k: int(r[k])
total = lambda r: (T(r, 'c_done') - T(r, 'c_sent')) / 1e3
print(f'{which}: {len(client)} client calls, {len(J)} joined with the daemon\'s records')
tot = sorted(total(r) for r in J)
p90, p99 = pct(tot, .9), pct(tot, .99)
print(f'total µs: p50 {pct(tot, .5):.0f} p90 {p90:.0f} p99 {p99:.0f} mean {st.mean(tot):.0f}')
for name, f in [('in the daemon (read -> written)', lambda r: (T(r, 'written') - T(r, 'read')) / 1e3),
                ('  of which at the tier (mux written -> reply read)', lambda r: (T(r, 'muxreply') - T(r, 'muxwritten')) / 1e3),
                ('outside the daemon (total - in the daemon)', lambda r: total(r) - (T(r, 'written') - T(r, 'read')) / 1e3)]:
    v = sorted(f(r) for r in J)
    print(f'{name}: p50 {pct(v, .5):.0f} p90 {pct(v, .9):.0f} p99 {pct(v, .99):.0f} mean {st.mean(v):.0f}')
slow90 = [r for r in J if total(r) >= p90]
slow99 = [r for r in J if total(r) >= p99]
print(f'{"stage (µs)":30s} {"p50":>6s} {"p90":>6s} {"p99":>6s} {"mean":>6s} {">=p90":>6s} {">=p99":>6s}')
for name, a, b in stages:
    v = sorted((T(r, b) - T(r, a)) / 1e3 for r in J)
    m90 = st.mean((T(r, b) - T(r, a)) / 1e3 for r in slow90)
    m99 = st.mean((T(r, b) - T(r, a)) / 1e3 for r in slow99)
    print(f'{name:30s} {pct(v, .5):6.0f} {pct(v, .9):6.0f} {pct(v, .99):6.0f} {st.mean(v):6.0f} {m90:6.0f} {m99:6.0f}')
for f, what in [('simahead', 'simulator frames handled before it since its last flush'),
                ('simbatch', 'frames in the simulator flush carrying its reply'),
                ('active', 'requests holding a tier slot when it took one'),
                ('waiters', 'requests waiting in admission then'),
                ('limit', 'admission limit then')]:
    v = sorted(int(r[f]) for r in J)
    print(f'{what}: p50 {pct(v, .5)} p90 {pct(v, .9)} mean {st.mean(v):.1f}')
print('waited in admission:', sum(r['waited'] == 'true' for r in J), 'of', len(J))
print('became the mux flusher:', sum(r['muxflusher'] == 'true' for r in J), 'of', len(J))

rows = [l.split() for l in open(f'{d}/{which}.ss') if l.strip()]
first, last = rows[1], rows[-1]  # the first sample may precede the client's start
dt = max((int(last[0]) - int(first[0])) / 1e9, 1e-9)
names = {0: 'daemon', 1: 'burst sbbench' if which == 'polite' else which + ' sbbench', 2: 'polite sbbench'}
print(f'schedstat over {dt:.2f} s:')
for n, i in enumerate(range(1, len(first), 4)):
    try:
        run = (int(last[i + 1]) - int(first[i + 1])) / 1e9
        wait = (int(last[i + 2]) - int(first[i + 2])) / 1e9
        sl = int(last[i + 3]) - int(first[i + 3])
    except (ValueError, IndexError):
        continue
    print(f'  {names.get(n, first[i]):15s} CPU {run:.2f} s ({run / dt:.2f} cores), run-queue wait {wait:.2f} s '
          f'({wait / dt:.2f} threads waiting on average), {sl} timeslices, {wait / max(sl, 1) * 1e6:.0f} µs wait per timeslice')

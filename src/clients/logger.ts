import pino from 'pino';
import { context, trace } from '@opentelemetry/api';
import type { Logger as TemporalLogger, LogLevel, LogMetadata } from '@temporalio/common';
import type { Config } from './config';

export type Logger = pino.Logger;

let root: Logger | undefined;

export function createLogger(level: string, destination: pino.DestinationStream): Logger {
  // The SDK puts activity task tokens in its failure logs; a token completes a task, so it never reaches a log.
  return pino({ level, base: { pid: process.pid }, redact: ['taskToken'], mixin: traceIds }, destination);
}

/** The active span's ids on every line logged inside a traced activity or request, so a log line leads to its trace. */
function traceIds(): { trace_id?: string; span_id?: string } {
  const span = trace.getSpan(context.active());
  if (!span) return {};
  const c = span.spanContext();
  return { trace_id: c.traceId, span_id: c.spanId };
}

/** One pino root logger per process; child loggers carry the component name. */
export function getLogger(cfg?: Pick<Config, 'logLevel'>, component?: string): Logger {
  root ??= createLogger(cfg?.logLevel ?? process.env.QCFLOW_LOG_LEVEL ?? 'info', pino.destination(2));
  return component ? root.child({ component }) : root;
}

const LEVEL_MAP: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/** Adapts pino to the Temporal Runtime's Logger so SDK, workflow and activity logs share one structured stream. */
export function temporalLogger(log: Logger): TemporalLogger {
  const emit = (level: LogLevel, message: string, meta?: LogMetadata): void => {
    log[LEVEL_MAP[level]](meta ?? {}, message);
  };
  return {
    log: emit,
    trace: (m, meta) => emit('TRACE', m, meta),
    debug: (m, meta) => emit('DEBUG', m, meta),
    info: (m, meta) => emit('INFO', m, meta),
    warn: (m, meta) => emit('WARN', m, meta),
    error: (m, meta) => emit('ERROR', m, meta),
  };
}

/**
 * Errors the server turns into OpenAI-style bodies: `{"error": {message, type, param, code}}`.
 * Anything else thrown inside a handler becomes a 500 with a generic message.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toBody(): {
    error: { message: string; type: string; param: string | null; code: string | null };
  } {
    return {
      error: { message: this.message, type: this.type, param: this.param, code: this.code },
    };
  }
}

export const badRequest = (
  message: string,
  param: string | null = null,
  code: string | null = null,
) => new ApiError(400, message, 'invalid_request_error', code, param);

export const notFound = (message: string, code: string | null = null) =>
  new ApiError(404, message, 'invalid_request_error', code);

export const unavailable = (message: string) =>
  new ApiError(503, message, 'server_error', 'server_shutting_down');

export const internalError = () =>
  new ApiError(500, 'The server had an error while processing your request.', 'server_error');

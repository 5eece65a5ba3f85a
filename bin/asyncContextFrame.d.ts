export declare const ASYNC_CONTEXT_FRAME_FLAG: '--experimental-async-context-frame';
export declare function asyncContextFrameFlag(version?: string, platform?: string): string | undefined;

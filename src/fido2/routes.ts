/** FIDO Alliance conformance API (Server Requirements and Transport Binding Profile). */
import type { FastifyInstance } from 'fastify';

export async function fido2Routes(_app: FastifyInstance) {}

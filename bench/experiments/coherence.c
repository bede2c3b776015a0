// What a cache line costs when the two vCPUs share it, near and far apart (bench/NOTES.md,
// session of 2026-12-07; issue 5). Thread 0 (CPU 0) and thread 1 (CPU 1) work on one buffer in
// turn; every 2 s it prints the cache-line round trip and, for a buffer of S bytes:
//   local write: thread 0 rewrites lines only it has touched;
//   write after remote read: thread 1 has just read them (the optimizer writing W after the
//     other core packed it);
//   read shared: thread 0 rereads them after thread 1 read them;
//   local RMW: thread 0 scales a B-byte buffer only it touches (an L3-sized stream).
// Build and run (Linux, x86-64 with AVX2):
//   gcc -O2 -mavx2 -pthread bench/experiments/coherence.c -o /tmp/coherence
//   /tmp/coherence 262144 30 4194304      # S bytes, seconds, B bytes
// Rounds with a round trip above 250 ns count as far (the two vCPUs on different dies).
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <immintrin.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static _Alignas(64) atomic_int cmd; static _Alignas(64) atomic_int ack;
static float *buf, *big; static size_t n, nbig; static volatile float sink;
static void pin(int c){cpu_set_t s;CPU_ZERO(&s);CPU_SET(c,&s);pthread_setaffinity_np(pthread_self(),sizeof s,&s);}
static float readall(const float*p,size_t n){__m256 a=_mm256_setzero_ps(),b=a;for(size_t i=0;i<n;i+=16){a=_mm256_add_ps(a,_mm256_load_ps(p+i));b=_mm256_add_ps(b,_mm256_load_ps(p+i+8));}float o[8];_mm256_storeu_ps(o,_mm256_add_ps(a,b));return o[0];}
static void writeall(float*p,size_t n,float v){__m256 x=_mm256_set1_ps(v);for(size_t i=0;i<n;i+=8)_mm256_store_ps(p+i,x);}
static void rmw(float*p,size_t n){__m256 x=_mm256_set1_ps(0.999f);for(size_t i=0;i<n;i+=8)_mm256_store_ps(p+i,_mm256_mul_ps(_mm256_load_ps(p+i),x));}
static void* t1(void*a){pin(1);int seen=0;for(;;){int c;while((c=atomic_load_explicit(&cmd,memory_order_acquire))==seen)_mm_pause();seen=c;int op=c&0xff;
  if(op==9){atomic_store(&ack,c);return 0;} if(op==1){} if(op==2) sink=readall(buf,n); atomic_store_explicit(&ack,c,memory_order_release);}}
static int seq=0;
static void call(int op){seq+=256;int c=seq|op;atomic_store_explicit(&cmd,c,memory_order_release);while(atomic_load_explicit(&ack,memory_order_acquire)!=c)_mm_pause();}
int main(int argc,char**argv){size_t S=argc>1?atol(argv[1]):262144;int secs=argc>2?atoi(argv[2]):30;size_t SB=argc>3?atol(argv[3]):(4<<20);
 n=S/4;nbig=SB/4;buf=aligned_alloc(64,S);big=aligned_alloc(64,SB);memset(buf,0,S);for(size_t i=0;i<nbig;i++)big[i]=1;
 pthread_t th;pin(0);pthread_create(&th,0,t1,0);
 double acc[2][5]={{0}};int cnt[2]={0};double end=now()+secs,wend=now()+2;double w[5]={0};int wc=0;double rtw=0;
 while(now()<end){double t0=now();for(int i=0;i<100;i++)call(1);double rt=(now()-t0)/100*1e9;
  double a,b,c,d;
  writeall(buf,n,1); t0=now(); writeall(buf,n,2); a=now()-t0;          // local write (lines already ours)
  call(2); t0=now(); writeall(buf,n,3); b=now()-t0;                    // write after the other core read them
  call(2); t0=now(); sink=readall(buf,n); c=now()-t0;                  // read after the other core read (shared)
  t0=now(); rmw(big,nbig); d=now()-t0;                                 // local RMW over big (L3)
  int f=rt>250; double v[5]={a,b,c,d,rt}; for(int i=0;i<5;i++){acc[f][i]+=v[i];w[i]+=v[i];} cnt[f]++; wc++;
  if(now()>wend){printf("win rt %4.0f ns: local write %.1f us, write after remote read %.1f us, read shared %.1f us, local RMW %zu KB %.1f us\n",w[4]/wc,w[0]/wc*1e6,w[1]/wc*1e6,w[2]/wc*1e6,SB>>10,w[3]/wc*1e6);fflush(stdout);memset(w,0,sizeof w);wc=0;wend=now()+2;}
 }
 call(9);
 for(int f=0;f<2;f++)if(cnt[f])printf("%s (%d rounds, rt %.0f ns): local write %.1f us, write after remote read %.1f us, read shared %.1f us, local RMW %.1f us (%zu lines in buf)\n",f?"FAR ":"NEAR",cnt[f],acc[f][4]/cnt[f],acc[f][0]/cnt[f]*1e6,acc[f][1]/cnt[f]*1e6,acc[f][2]/cnt[f]*1e6,acc[f][3]/cnt[f]*1e6,S/64);
 return 0;}

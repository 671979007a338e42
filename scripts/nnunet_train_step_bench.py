# Times nnU-Net's train_step (CPU, fp32) on a 3D PlainConvUNet: patch 64^3, batch 2, 5 stages.
# With a second argument `resenc`: the ResEnc-M ResidualEncoderUNet of the same stages
# (1, 3, 4, 6, 6 blocks, one decoder conv per stage), as trainer/examples/train_step_bench.rs.
import time, sys, torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet, ResidualEncoderUNet
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
torch.manual_seed(0)
feats=[32,64,128,256,320]; strides=[[1,1,1]]+[[2,2,2]]*4
common=dict(conv_bias=True,norm_op=torch.nn.InstanceNorm3d,norm_op_kwargs={'eps':1e-5,'affine':True},nonlin=torch.nn.LeakyReLU,nonlin_kwargs={'inplace':True},deep_supervision=True)
if len(sys.argv)>2 and sys.argv[2]=='resenc':
    net=ResidualEncoderUNet(1,5,feats,torch.nn.Conv3d,[[3,3,3]]*5,strides,[1,3,4,6,6],3,[1]*4,**common)
else:
    net=PlainConvUNet(1,5,feats,torch.nn.Conv3d,[[3,3,3]]*5,strides,[2]*5,3,[2]*4,**common)
loss=DC_and_CE_loss({'batch_dice':False,'smooth':1e-5,'do_bg':False,'ddp':False},{},weight_ce=1,weight_dice=1,dice_class=MemoryEfficientSoftDiceLoss)
w=[1/2**i for i in range(4)]; w[-1]=0; s=sum(w); w=[x/s for x in w]
loss=DeepSupervisionWrapper(loss,w)
opt=torch.optim.SGD(net.parameters(),0.01,momentum=0.99,nesterov=True,weight_decay=3e-5)
x=torch.randn(2,1,64,64,64)
ys=[torch.randint(0,3,(2,1,64//2**i,64//2**i,64//2**i)).float() for i in range(4)]
def step():
    opt.zero_grad(set_to_none=True)
    out=net(x); l=loss(out,ys); l.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(),12); opt.step(); return l.item()
n=int(sys.argv[1]) if len(sys.argv)>1 else 10
step(); step()
t=time.perf_counter()
for _ in range(n): step()
print(f"nnU-Net train_step ({type(net).__name__}): {(time.perf_counter()-t)/n:.3f} s/iter over {n} iters, threads {torch.get_num_threads()}")
